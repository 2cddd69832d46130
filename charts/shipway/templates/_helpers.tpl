{{/* ---------- names ---------- */}}
{{- define "shipway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "shipway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "shipway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A use case name (hotel_rates) as a DNS label part (hotel-rates). */}}
{{- define "shipway.slug" -}}
{{- . | replace "_" "-" | lower | trunc 20 | trimSuffix "-" }}
{{- end }}

{{/* Name of a component resource: (dict "ctx" $ "name" "mlflow") -> <fullname>-mlflow. */}}
{{- define "shipway.componentName" -}}
{{- printf "%s-%s" (include "shipway.fullname" .ctx) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Per use case: (dict "ctx" $ "name" "predict" "usecase" "hotel_rates"). */}}
{{- define "shipway.usecaseName" -}}
{{- printf "%s-%s-%s" (include "shipway.fullname" .ctx) .name (include "shipway.slug" .usecase) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* ---------- labels ---------- */}}
{{- define "shipway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shipway.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- with .usecase }}
shipway.io/usecase: {{ . }}
{{- end }}
{{- end }}

{{- define "shipway.labels" -}}
helm.sh/chart: {{ include "shipway.chart" .ctx }}
{{ include "shipway.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: shipway
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels on pod templates: selector labels + version + the NetworkPolicy client roles. */}}
{{- define "shipway.podLabels" -}}
{{ include "shipway.labels" . }}
{{- range .roles }}
shipway.io/{{ . }}: "true"
{{- end }}
{{- end }}

{{/* ---------- images ---------- */}}
{{- define "shipway.imageRef" -}}
{{- if eq (toString .tag) "latest" -}}
{{- fail (printf "image %s: tag 'latest' is not allowed, pin an exact version tag (or a digest)" .repository) -}}
{{- end -}}
{{- if .digest -}}
{{ .repository }}@{{ .digest }}
{{- else -}}
{{ .repository }}:{{ .tag }}
{{- end -}}
{{- end }}

{{- define "shipway.image" -}}
{{- $img := dict "repository" .Values.image.repository "tag" (default .Chart.AppVersion .Values.image.tag) "digest" .Values.image.digest -}}
{{ include "shipway.imageRef" $img }}
{{- end }}

{{/*
checkov skip for CKV_K8S_43 (image by digest), rendered only while some image of the
workload is referenced by tag: images are pinned by exact version tag, and the digest is a
per-environment choice (image.digest, postgresql.image.digest, redis.image.digest). Setting
the digest removes the skip. Usage: include "shipway.skipDigest" (list $ .Values.image).
*/}}
{{- define "shipway.skipDigest" -}}
{{- $byTag := false }}
{{- range (rest .) }}{{ if not .digest }}{{ $byTag = true }}{{ end }}{{ end }}
{{- if $byTag }}
checkov.io/skip1: CKV_K8S_43=Image pinned by exact version tag; set the digest in values to pin by digest
{{- end }}
{{- end }}

{{/*
checkov skip for CKV_K8S_35 (secrets as files rather than env vars), on the workloads whose
consumers read credentials from the environment only: MLflow (MLFLOW_TRACKING_PASSWORD,
MLFLOW_BACKEND_STORE_URI, AWS_* / AZURE_STORAGE_CONNECTION_STRING), Feast (its
feature_store.yaml interpolates ${SHIPWAY_FEAST_*}) and Shipway settings (SHIPWAY_*).
The values come from secretKeyRef, never from ConfigMaps or args.
*/}}
{{- define "shipway.skipSecretEnv" -}}
checkov.io/skip2: CKV_K8S_35=MLflow / Feast / Shipway settings read credentials from env vars only; sourced by secretKeyRef
{{- end }}

{{/* ---------- security ---------- */}}
{{- define "shipway.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "shipway.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* Common pod-spec fields of every pod: SA token off, security context, pull secrets. */}}
{{- define "shipway.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- include "shipway.podSecurityContext" . | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Scratch volume: the only writable path of a read-only root filesystem. */}}
{{- define "shipway.scratchVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.scratchSizeLimit }}
{{- end }}

{{- define "shipway.scratchMount" -}}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Projected KFP token (multi-user Kubeflow); see kfp.projectedToken. */}}
{{- define "shipway.kfpTokenVolume" -}}
{{- if .Values.kfp.projectedToken.enabled }}
- name: kfp-token
  projected:
    sources:
      - serviceAccountToken:
          path: token
          audience: {{ .Values.kfp.projectedToken.audience }}
          expirationSeconds: {{ .Values.kfp.projectedToken.expirationSeconds }}
{{- end }}
{{- end }}

{{- define "shipway.kfpTokenMount" -}}
{{- if .Values.kfp.projectedToken.enabled }}
- name: kfp-token
  mountPath: /var/run/secrets/kubeflow/pipelines
  readOnly: true
{{- end }}
{{- end }}

{{/* ---------- secrets and endpoints ---------- */}}
{{- define "shipway.apiTokenSecret" -}}
{{- default (include "shipway.componentName" (dict "ctx" . "name" "api-token")) .Values.auth.apiToken.existingSecret }}
{{- end }}

{{- define "shipway.postgresqlSecret" -}}
{{- if .Values.postgresql.bundled }}
{{- include "shipway.componentName" (dict "ctx" . "name" "postgresql") }}
{{- else }}
{{- required "postgresql.external.existingSecret is required when postgresql.bundled is false: name a Secret holding the connection URIs" .Values.postgresql.external.existingSecret }}
{{- end }}
{{- end }}

{{- define "shipway.redisSecret" -}}
{{- if .Values.redis.bundled }}
{{- include "shipway.componentName" (dict "ctx" . "name" "redis") }}
{{- else }}
{{- required "redis.external.existingSecret is required when redis.bundled is false: name a Secret holding the Feast Redis connection string" .Values.redis.external.existingSecret }}
{{- end }}
{{- end }}

{{- define "shipway.redisConnectionKey" -}}
{{- if .Values.redis.bundled }}connection{{ else }}{{ .Values.redis.external.connectionKey }}{{ end }}
{{- end }}

{{/* Key of a PostgreSQL URI in the (bundled or external) Secret. Arg: (list $ "feastRegistryUriKey"). */}}
{{- define "shipway.pgKey" -}}
{{- $ctx := index . 0 }}{{ $which := index . 1 }}
{{- if $ctx.Values.postgresql.bundled }}
{{- index (dict "mlflowBackendStoreUriKey" "mlflow-backend-store-uri" "mlflowAuthDatabaseUriKey" "mlflow-auth-database-uri" "feastRegistryUriKey" "feast-registry-uri" "predictionLogUriKey" "prediction-log-uri" "governancePredictionLogUriKey" "governance-prediction-log-uri") $which }}
{{- else }}
{{- index $ctx.Values.postgresql.external $which }}
{{- end }}
{{- end }}

{{- define "shipway.mlflowAuthSecret" -}}
{{- default (include "shipway.componentName" (dict "ctx" . "name" "mlflow-auth")) .Values.mlflow.auth.existingSecret }}
{{- end }}

{{/* Is MLflow deployed here with basic auth (and so with one user per component)? "true" or "". */}}
{{- define "shipway.mlflowUsers" -}}
{{- if and .Values.mlflow.enabled .Values.mlflow.auth.enabled }}true{{ end }}
{{- end }}

{{/* MLflow username of a component (shipway.governance.access.Role.username). */}}
{{- define "shipway.mlflowUsername" -}}
shipway-{{ . }}
{{- end }}

{{/*
Secret holding one component's MLflow password (key `password`): the existing one named in
mlflow.auth.users.existingSecrets.<component>, else the generated <fullname>-mlflow-user-<c>.
Arg: (list $ "prediction").
*/}}
{{- define "shipway.mlflowUserSecret" -}}
{{- $ctx := index . 0 }}{{ $c := index . 1 }}
{{- default (include "shipway.componentName" (dict "ctx" $ctx "name" (printf "mlflow-user-%s" $c))) (index $ctx.Values.mlflow.auth.users.existingSecrets $c) }}
{{- end }}

{{/*
The Secret the training pipeline's pods read the MLflow password from (key `admin-password`,
the key pipelines/training.py SECRET_ENV maps; it holds the pipeline user's password, never
the admin's). In another namespace it is the generated copy under the name the compiled
pipeline's default parameter names (<fullname>-mlflow-auth), so runs started from the
Kubeflow UI find it; in the release namespace that name is the admin Secret, so there it is
the pipeline user's own Secret.
*/}}
{{- define "shipway.pipelineMlflowSecret" -}}
{{- $existing := .Values.mlflow.auth.users.existingSecrets.pipeline }}
{{- if not (include "shipway.mlflowUsers" .) }}
{{- include "shipway.mlflowAuthSecret" . }}
{{- else if $existing }}
{{- $existing }}
{{- else if ne (include "shipway.pipelinesNamespace" .) .Release.Namespace }}
{{- include "shipway.componentName" (dict "ctx" . "name" "mlflow-auth") }}
{{- else }}
{{- include "shipway.mlflowUserSecret" (list . "pipeline") }}
{{- end }}
{{- end }}

{{/* Secret of the retraining webhook's bearer token (SHIPWAY_TRIGGER_TOKEN). */}}
{{- define "shipway.triggerTokenSecret" -}}
{{- default (include "shipway.componentName" (dict "ctx" . "name" "trigger-token")) .Values.trigger.auth.existingSecret }}
{{- end }}

{{/*
A generated credential that stays the same across `helm upgrade`: the value already in the
live Secret (lookup) when there is one, else a new random one. `helm template` and
`--dry-run` cannot look up, so they show a fresh value; an install or upgrade keeps it.
Arg: (dict "ctx" $ "name" <Secret> "key" <key> "length" <n>).
*/}}
{{- define "shipway.keptSecret" -}}
{{- $old := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $old $old.data (index $old.data .key) }}
{{- index $old.data .key | b64dec }}
{{- else }}
{{- randAlphaNum (int .length) }}
{{- end }}
{{- end }}

{{/*
What values.schema.json cannot say (JSON Schema does not compare two numbers), refused with
a message naming the values. Included by templates/prediction.yaml.
*/}}
{{- define "shipway.validate" -}}
{{- $p := .Values.prediction }}
{{- $as := $p.autoscaling }}
{{- if and $as.enabled (gt (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- fail (printf "prediction.autoscaling.minReplicas (%d) is above prediction.autoscaling.maxReplicas (%d): the HorizontalPodAutoscaler would be rejected; lower minReplicas or raise maxReplicas" (int $as.minReplicas) (int $as.maxReplicas)) }}
{{- end }}
{{- $pdb := $p.podDisruptionBudget }}
{{- if and $pdb.enabled (kindIs "invalid" $pdb.maxUnavailable) (not (kindIs "string" $pdb.minAvailable)) (not (kindIs "invalid" $pdb.minAvailable)) }}
{{- $replicas := ternary (int $as.minReplicas) (int $p.replicaCount) (toString $as.enabled | eq "true") }}
{{- $what := ternary "prediction.autoscaling.minReplicas" "prediction.replicaCount" (toString $as.enabled | eq "true") }}
{{- if le $replicas (int $pdb.minAvailable) }}
{{- fail (printf "%s (%d) must be above prediction.podDisruptionBudget.minAvailable (%d): with no pod to spare the PodDisruptionBudget blocks every node drain; raise the replicas, lower minAvailable or disable the budget" $what $replicas (int $pdb.minAvailable)) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Namespace-qualified, so it also holds in the training pipeline's pods (pipelines.namespace). */}}
{{- define "shipway.mlflowTrackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s.%s.svc:%d" (include "shipway.componentName" (dict "ctx" . "name" "mlflow")) .Release.Namespace (int .Values.mlflow.port) }}
{{- else }}
{{- required "mlflow.externalTrackingUri is required when mlflow.enabled is false" .Values.mlflow.externalTrackingUri }}
{{- end }}
{{- end }}

{{/* ---------- pipelines published to the Kubeflow UI (templates/pipeline-upload.yaml) ---------- */}}
{{/* The pipeline kinds the chart can publish (pipelines/packaging.py KINDS), as YAML: the
chart file holding each one's compiled package and which of shipway.pipelineDefaults are its
parameters. Batch scoring joins as one more entry (files/batch_pipeline.yaml; its parameters
have no repo or dvc_remote) plus "batch" in the schema's pipelineUpload.kinds enum. */}}
{{- define "shipway.pipelineKinds" -}}
training:
  file: files/training_pipeline.yaml
  parameters: [tracking_uri, env_config_map, postgresql_secret, redis_secret, mlflow_auth_secret, repo, dvc_remote]
batch:
  file: files/batch_pipeline.yaml
  parameters: [tracking_uri, env_config_map, postgresql_secret, redis_secret, mlflow_auth_secret, input_uri, output_uri]
{{- end }}

{{/* Name of a use case's pipeline of a kind in Kubeflow. Arg: (list $ usecase kind). */}}
{{- define "shipway.kfpPipelineName" -}}
{{- printf "%s-%s-%s" (include "shipway.fullname" (index . 0)) (index . 1) (index . 2) }}
{{- end }}

{{/* The release's values baked into every published pipeline's parameter defaults (YAML):
the same names the env ConfigMap gives `shipway pipeline submit` and the trigger. No
credentials: the steps read those from the Secrets named here. */}}
{{- define "shipway.pipelineDefaults" -}}
tracking_uri: {{ include "shipway.mlflowTrackingUri" . | quote }}
env_config_map: {{ include "shipway.componentName" (dict "ctx" . "name" "env") | quote }}
postgresql_secret: {{ include "shipway.postgresqlSecret" . | quote }}
redis_secret: {{ include "shipway.redisSecret" . | quote }}
mlflow_auth_secret: {{ include "shipway.pipelineMlflowSecret" . | quote }}
repo: {{ .Values.pipelines.gitRepo | quote }}
dvc_remote: {{ .Values.pipelines.dvcRemote | quote }}
{{- end }}

{{/* ---------- training pipeline pods ---------- */}}
{{/* Namespace the training pipeline's pods run in (pipelines.namespace; empty: the release's). */}}
{{- define "shipway.pipelinesNamespace" -}}
{{- default .Release.Namespace .Values.pipelines.namespace }}
{{- end }}

{{/*
A generated Secret's copy for the pipeline pods' namespace, holding only the keys the
pipeline reads (pipelines/training.py SECRET_ENV), rendered when that namespace is not the
release's. Arg: (dict "ctx" $ "name" <Secret name> "data" (dict key value ...)).
*/}}
{{- define "shipway.pipelineSecretCopy" -}}
{{- $ := .ctx }}
{{- $pns := include "shipway.pipelinesNamespace" $ }}
{{- if ne $pns $.Release.Namespace }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ .name }}
  namespace: {{ $pns }}
  labels:
    {{- include "shipway.labels" (dict "ctx" $ "component" "pipeline-env") | nindent 4 }}
type: Opaque
data:
  {{- range $k, $v := .data }}
  {{ $k }}: {{ $v | b64enc | quote }}
  {{- end }}
---
{{- end }}
{{- end }}

{{/* Is the prometheus-operator in use? "true" or "". */}}
{{- define "shipway.operator" -}}
{{- $mode := .Values.prometheus.operator.mode }}
{{- if or (eq $mode "enabled") (and (eq $mode "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}true{{ end }}
{{- end }}

{{/* prometheus.io scrape annotations, when no operator. Arg: (list $ port path). */}}
{{- define "shipway.scrapeAnnotations" -}}
{{- $ctx := index . 0 }}
{{- if not (include "shipway.operator" $ctx) }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ index . 1 | quote }}
prometheus.io/path: {{ index . 2 | quote }}
{{- end }}
{{- end }}

{{/* Does any workload need egress outside the cluster? */}}
{{- define "shipway.externalStores" -}}
{{- if or (not .Values.postgresql.bundled) (not .Values.redis.bundled) (ne .Values.mlflow.artifacts.type "pvc") }}true{{ end }}
{{- end }}

{{/*
Environment of the Shipway application containers. Non-secret settings come from the
<fullname>-env ConfigMap; credentials from Secrets by reference. Arg: (dict "ctx" $
"usecase" "hotel_rates" "apiToken" true "feastOnly" false "mlflowUser" "prediction"
"noStores" false "governanceLog" false): apiToken adds SHIPWAY_API_TOKEN (prediction
service only); feastOnly keeps just the Feast stores (feature server, Feast jobs);
governanceLog gives the prediction log's governance role (read, delete, locks: the monitor)
in place of the service's (read, append); mlflowUser logs in to MLflow as that
component's own user (shipway-<component>, its password from its own Secret; no
mlflowUser: no MLflow credentials at all); noStores leaves out every store credential
(the trigger reaches only the Kubeflow Pipelines API).
*/}}
{{- define "shipway.appEnv" -}}
{{- $ := .ctx }}
envFrom:
  - configMapRef:
      name: {{ include "shipway.componentName" (dict "ctx" $ "name" "env") }}
  {{- with $.Values.extraEnvFrom }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
env:
  {{- with .usecase }}
  - name: SHIPWAY_USECASE
    value: {{ . | quote }}
  {{- end }}
  {{- if not .noStores }}
  {{- if not .feastOnly }}
  - name: SHIPWAY_PREDICTION_LOG_URI
    valueFrom:
      secretKeyRef:
        name: {{ include "shipway.postgresqlSecret" $ }}
        key: {{ include "shipway.pgKey" (list $ (ternary "governancePredictionLogUriKey" "predictionLogUriKey" (eq (toString .governanceLog) "true"))) }}
  {{- end }}
  - name: SHIPWAY_FEAST_REGISTRY_PATH
    valueFrom:
      secretKeyRef:
        name: {{ include "shipway.postgresqlSecret" $ }}
        key: {{ include "shipway.pgKey" (list $ "feastRegistryUriKey") }}
  - name: SHIPWAY_FEAST_REDIS_CONNECTION
    valueFrom:
      secretKeyRef:
        name: {{ include "shipway.redisSecret" $ }}
        key: {{ include "shipway.redisConnectionKey" $ }}
  {{- end }}
  {{- if and (include "shipway.mlflowUsers" $) .mlflowUser }}
  - name: MLFLOW_TRACKING_USERNAME
    value: {{ include "shipway.mlflowUsername" .mlflowUser | quote }}
  - name: MLFLOW_TRACKING_PASSWORD
    valueFrom:
      secretKeyRef:
        name: {{ include "shipway.mlflowUserSecret" (list $ .mlflowUser) }}
        key: password
  {{- end }}
  {{- if and .apiToken $.Values.auth.apiToken.enabled }}
  - name: SHIPWAY_API_TOKEN
    valueFrom:
      secretKeyRef:
        name: {{ include "shipway.apiTokenSecret" $ }}
        key: {{ $.Values.auth.apiToken.secretKey }}
  {{- end }}
  {{- with $.Values.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{- define "shipway.nodePlacement" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
