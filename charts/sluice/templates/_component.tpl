{{/*
One long-running component: its env ConfigMap, Deployment, Service, PodDisruptionBudget and
(when the values have autoscaling) HorizontalPodAutoscaler. Called with a dict:
  root       the top context ($)
  component  the component label, e.g. "router"
  name       object name
  labels     extra selector labels (a dict; model servers add model and version)
  values     the component's values (image, replicaCount, resources, env, pdb, autoscaling, ...)
  args       the container args, e.g. (list "serve" "router")
  env        the chart's own SLUICE_* settings (a dict), merged under values.env
  secrets    the roles whose Secrets the container reads as env (sluice.secretEnv), e.g.
             (list "admin" "redis")
  registry   true: mount the registry read-only at registry.mountPath
  serviceAccountName  optional; default: the release's no-rights ServiceAccount
*/}}
{{- define "sluice.component" -}}
{{- $root := .root -}}
{{- $labels := merge (dict) (default dict .labels) (include "sluice.selectorLabels" . | fromYaml) -}}
{{- $allLabels := merge (dict) (default dict .labels) (include "sluice.labels" . | fromYaml) -}}
{{- $env := merge (dict) (default dict .values.env) .env -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- toYaml $allLabels | nindent 4 }}
data:
  {{- range $key, $value := $env }}
  {{ $key }}: {{ $value | toString | quote }}
  {{- end }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- toYaml $allLabels | nindent 4 }}
  annotations:
    {{- $skips := list "CKV_K8S_15" "CKV_K8S_43" }}
    {{- if .secrets }}{{ $skips = append $skips "CKV_K8S_35" }}{{ end }}
    {{- if .automountToken }}{{ $skips = append $skips "CKV_K8S_38" }}{{ end }}
    {{- include "sluice.checkovSkips" $skips | nindent 4 }}
spec:
  {{- if not (and .values.autoscaling .values.autoscaling.enabled) }}
  replicas: {{ .values.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- toYaml $labels | nindent 6 }}
  template:
    metadata:
      labels:
        {{- toYaml $allLabels | nindent 8 }}
      annotations:
        checksum/config: {{ toJson $env | sha256sum }}
        {{- if .secrets }}
        checksum/secrets: {{ include "sluice.secretChecksum" (dict "root" $root "roles" .secrets) }}
        {{- end }}
        {{- include "sluice.podAnnotations" (dict "root" $root "annotations" .values.podAnnotations) | nindent 8 }}
    spec:
      {{- include "sluice.podCommon" . | nindent 6 }}
      {{- if .values.affinity | not }}
      affinity:
        podAntiAffinity:
          preferredDuringSchedulingIgnoredDuringExecution:
            - weight: 100
              podAffinityTerm:
                topologyKey: kubernetes.io/hostname
                labelSelector:
                  matchLabels:
                    {{- toYaml $labels | nindent 20 }}
      {{- end }}
      terminationGracePeriodSeconds: 30
      containers:
        - name: {{ .component }}
          {{- include "sluice.image" . | nindent 10 }}
          args: {{ toJson .args }}
          envFrom:
            - configMapRef:
                name: {{ .name }}
          {{- with include "sluice.secretEnv" (dict "root" $root "roles" .secrets) }}
          env:
            {{- . | nindent 12 }}
          {{- end }}
          ports:
            - name: http
              containerPort: 8000
              protocol: TCP
          {{- include "sluice.probes" . | nindent 10 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            {{- if .registry }}
            - name: registry
              mountPath: {{ $root.Values.registry.mountPath }}
              readOnly: true
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 256Mi
        {{- if .registry }}
        - name: registry
          persistentVolumeClaim:
            claimName: {{ include "sluice.registryClaim" $root }}
            readOnly: true
        {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- toYaml $allLabels | nindent 4 }}
  {{- with (and .values.service .values.service.annotations) }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ (and .values.service .values.service.type) | default "ClusterIP" }}
  selector:
    {{- toYaml $labels | nindent 4 }}
  ports:
    - name: http
      port: {{ (and .values.service .values.service.port) | default 8000 }}
      targetPort: http
      protocol: TCP
{{- if .values.pdb.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- toYaml $allLabels | nindent 4 }}
spec:
  maxUnavailable: {{ .values.pdb.maxUnavailable }}
  selector:
    matchLabels:
      {{- toYaml $labels | nindent 6 }}
{{- end }}
{{- if and .values.autoscaling .values.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- toYaml $allLabels | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ .values.autoscaling.minReplicas }}
  maxReplicas: {{ .values.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .values.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- end -}}
