{{/* The chart name, shortened to fit a DNS label. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of every object: the release name, with the chart name unless it has it. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* <fullname>-<component>. Call with (dict "root" $ "component" "router"). */}}
{{- define "sluice.componentName" -}}
{{- printf "%s-%s" (include "sluice.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The selector labels of a component: (dict "root" $ "component" "router"). */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Every label of a component's objects: (dict "root" $ "component" "router"). */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: sluice
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of a model server: the component labels plus model and version. */}}
{{- define "sluice.modelSelectorLabels" -}}
{{ include "sluice.selectorLabels" (dict "root" .root "component" "model-server") }}
serving.sluice.dev/model: {{ .model }}
serving.sluice.dev/version: {{ .version }}
{{- end -}}

{{/* An image reference: (dict "image" <merged image values> "root" $). */}}
{{- define "sluice.imageRef" -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The serving image of a component: (dict "root" $ "values" .Values.router). */}}
{{- define "sluice.image" -}}
{{- $image := merge (deepCopy (default dict .values.image)) .root.Values.image -}}
image: {{ include "sluice.imageRef" (dict "image" $image "root" .root) | quote }}
imagePullPolicy: {{ $image.pullPolicy }}
{{- end -}}

{{/* The trainer image. */}}
{{- define "sluice.trainerImage" -}}
image: {{ include "sluice.imageRef" (dict "image" .Values.trainerImage "root" .) | quote }}
imagePullPolicy: {{ .Values.trainerImage.pullPolicy }}
{{- end -}}

{{/* The Redis URL every component reads as SLUICE_REDIS_URL. */}}
{{- define "sluice.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- printf "redis://%s:6379/0" (include "sluice.componentName" (dict "root" . "component" "redis")) -}}
{{- else -}}
{{- required "redis.url is required when redis.enabled is false" .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* The Secrets of the release, one per role: role -> the env variable that carries it, its
values (existingSecret, secretKey, value), the created Secret's component (its name is
<fullname>-<component>) and whether it is in use. Call with $. */}}
{{- define "sluice.secretRoles" -}}
{{- $v := .Values -}}
{{- $roles := dict
  "admin" (dict "env" "SLUICE_ADMIN_TOKEN" "values" $v.adminToken "component" "admin" "enabled" true)
  "featureWrite" (dict "env" "SLUICE_FEATURE_WRITE_TOKEN" "values" $v.featureWriteToken "component" "feature-writer" "enabled" true)
  "feedback" (dict "env" "SLUICE_FEEDBACK_TOKEN" "values" $v.feedbackToken "component" "feedback" "enabled" true)
  "featureRead" (dict "env" "SLUICE_FEATURE_READ_TOKEN" "values" $v.featureReadToken "component" "feature-reader" "enabled" $v.featureReadToken.enabled)
  "redis" (dict "env" "SLUICE_REDIS_PASSWORD" "values" $v.redis.auth "component" "redis-auth" "enabled" $v.redis.auth.enabled)
  "onlineRedis" (dict "env" "SLUICE_REDIS_PASSWORD" "values" $v.redis.onlineStore.auth "component" "online-redis-auth" "enabled" (not (empty $v.redis.onlineStore.auth.existingSecret)))
  "routerOnlineRedis" (dict "env" "SLUICE_ROUTER_FEATURE_REDIS_PASSWORD" "values" $v.redis.onlineStore.auth "component" "online-redis-auth" "enabled" (not (empty $v.redis.onlineStore.auth.existingSecret)))
  "predlogRedis" (dict "env" "SLUICE_REDIS_PASSWORD" "values" $v.redis.predictionLog.auth "component" "predlog-redis-auth" "enabled" (not (empty $v.redis.predictionLog.auth.existingSecret)))
  "routerPredlogRedis" (dict "env" "SLUICE_ROUTER_PREDLOG_REDIS_PASSWORD" "values" $v.redis.predictionLog.auth "component" "predlog-redis-auth" "enabled" (not (empty $v.redis.predictionLog.auth.existingSecret)))
-}}
{{- toJson $roles -}}
{{- end -}}

{{/* The role whose Secret holds the online store's Redis password, for the components
whose SLUICE_REDIS_URL is the online store (feature store, materialisation): its own Secret
(redis.onlineStore.auth.existingSecret) when given, else the one Redis password. */}}
{{- define "sluice.onlineRedisRole" -}}
{{- ternary "onlineRedis" "redis" (not (empty .Values.redis.onlineStore.auth.existingSecret)) -}}
{{- end -}}

{{/* The same for the drift monitor, whose SLUICE_REDIS_URL is the prediction log's Redis:
redis.predictionLog.auth.existingSecret when given, else the one Redis password. */}}
{{- define "sluice.predlogRedisRole" -}}
{{- ternary "predlogRedis" "redis" (not (empty .Values.redis.predictionLog.auth.existingSecret)) -}}
{{- end -}}

{{/* A role's Secret name: (dict "root" $ "role" "feedback"). */}}
{{- define "sluice.secretName" -}}
{{- $role := index (include "sluice.secretRoles" .root | fromJson) .role -}}
{{- default (include "sluice.componentName" (dict "root" .root "component" $role.component)) $role.values.existingSecret -}}
{{- end -}}

{{/* The admin token Secret's name. */}}
{{- define "sluice.adminSecretName" -}}
{{- include "sluice.secretName" (dict "root" . "role" "admin") -}}
{{- end -}}

{{/* The ServiceAccount of every component that needs no Kubernetes API. */}}
{{- define "sluice.serviceAccountName" -}}
{{- include "sluice.fullname" . -}}
{{- end -}}

{{/* The registry PVC's name. */}}
{{- define "sluice.registryClaim" -}}
{{- default (include "sluice.componentName" (dict "root" . "component" "registry")) .Values.registry.existingClaim -}}
{{- end -}}

{{/* Object name of a model version: <fullname>-<model>-<version>. */}}
{{- define "sluice.modelName" -}}
{{- printf "%s-%s-%s" (include "sluice.fullname" .root) .model .version | lower | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The stable version of a model: (dict "spec" <models.x>). */}}
{{- define "sluice.stableVersion" -}}
{{- if .spec.stable -}}{{ .spec.stable }}{{- else -}}{{ (first .spec.versions).name }}{{- end -}}
{{- end -}}

{{/* The router's seed routes, JSON: {"churn": {"upstreams": {"v1": ["http://..."]}, "stable": "v1"}}. */}}
{{- define "sluice.routes" -}}
{{- $root := . -}}
{{- $routes := dict -}}
{{- range $model, $spec := .Values.models -}}
{{- $upstreams := dict -}}
{{- range $spec.versions -}}
{{- $_ := set $upstreams .name (list (printf "http://%s:8000" (include "sluice.modelName" (dict "root" $root "model" $model "version" .name)))) -}}
{{- end -}}
{{- $_ := set $routes $model (dict "upstreams" $upstreams "stable" (include "sluice.stableVersion" (dict "spec" $spec))) -}}
{{- end -}}
{{- toJson $routes -}}
{{- end -}}

{{/* The pod annotations every Sluice pod carries: scrape settings and extras. */}}
{{- define "sluice.podAnnotations" -}}
{{- if .root.Values.monitoring.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: "8000"
prometheus.io/path: /metrics
{{- end }}
{{- with .annotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Probes on /livez and /readyz of the http port. */}}
{{- define "sluice.probes" -}}
startupProbe:
  httpGet: {path: /livez, port: http}
  periodSeconds: 2
  failureThreshold: 60
livenessProbe:
  httpGet: {path: /livez, port: http}
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 3
readinessProbe:
  httpGet: {path: /readyz, port: http}
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 2
{{- end -}}

{{/* The env a container takes from the release's Secrets: (dict "root" $ "roles" (list
"admin" "redis")); a role not in use (featureRead, redis with auth off) adds nothing. */}}
{{- define "sluice.secretEnv" -}}
{{- $roles := include "sluice.secretRoles" .root | fromJson -}}
{{- $env := list -}}
{{- range .roles }}
{{- $role := required (printf "unknown secret role %q" .) (index $roles .) }}
{{- if $role.enabled }}
{{- $ref := dict "name" (include "sluice.secretName" (dict "root" $.root "role" .)) "key" $role.values.secretKey }}
{{- $env = append $env (dict "name" $role.env "valueFrom" (dict "secretKeyRef" $ref)) }}
{{- end }}
{{- end }}
{{- if $env }}{{ toYaml $env }}{{ end }}
{{- end -}}

{{/* A checksum of what the chart knows of these roles' Secrets (names, keys, values set in
values.yaml), so `helm upgrade --set feedbackToken.value=...` rolls the pods that read it:
(dict "root" $ "roles" (list ...)). */}}
{{- define "sluice.secretChecksum" -}}
{{- $roles := include "sluice.secretRoles" .root | fromJson -}}
{{- $used := list -}}
{{- range .roles }}{{ $used = append $used (index $roles .) }}{{ end -}}
{{- toJson $used | sha256sum -}}
{{- end -}}

{{/* The pod spec parts every Sluice pod shares: (dict "root" $ "values" <component values>),
optionally "serviceAccountName" and "automountToken" (only the rollout controller's). */}}
{{- define "sluice.podCommon" -}}
serviceAccountName: {{ .serviceAccountName | default (include "sluice.serviceAccountName" .root) }}
automountServiceAccountToken: {{ .automountToken | default false }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* checkov's skips, each with its reason, as annotations checkov reads: (list "CKV_x" ...). */}}
{{- define "sluice.checkovSkips" -}}
{{- $reasons := dict
  "CKV_K8S_15" "IfNotPresent with immutable tags; pin image.digest for immutability (Always costs a registry round trip per start)"
  "CKV_K8S_43" "a digest is not known when the chart is written; set image.digest (the value exists) in production"
  "CKV_K8S_35" "the services read settings only from the environment (tokens and the Redis password from secretKeyRefs); redis-server takes requirepass as an argument"
  "CKV_K8S_38" "the rollout controller watches ModelRollouts and holds a Lease: it needs its token"
  "CKV_K8S_8" "a helm test pod runs once to completion: no liveness probe"
  "CKV_K8S_9" "a helm test pod runs once to completion: no readiness probe"
  "CKV2_K8S_6" "a helm test pod only sends requests and takes none"
-}}
{{- range $i, $id := . }}
checkov.io/skip{{ add1 $i }}: {{ printf "%s=%s" $id (index $reasons $id) | quote }}
{{- end }}
{{- end -}}
