"""Render the MLflow basic-auth ini from its ConfigMap template (init container).

The template holds no secret: ``${MLFLOW_AUTH_DATABASE_URI}`` is filled from the
environment (a Secret reference) into the pod's private emptyDir. ``%`` in values is
doubled because configparser treats it as interpolation syntax (URL-encoded passwords).
"""

import os
import string
import sys

src, dest = sys.argv[1], sys.argv[2]
with open(src, encoding="utf-8") as fh:
    template = string.Template(fh.read())
values = {k: v.replace("%", "%%") for k, v in os.environ.items()}
os.makedirs(os.path.dirname(dest), mode=0o700, exist_ok=True)
fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w", encoding="utf-8") as out:
    out.write(template.substitute(values))
print(f"wrote {dest}")
