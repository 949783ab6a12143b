{{/*
Shared pieces of every vispod workload. Templates pass a dict:
  root: the chart context ($), name: the service (synth, generator, …), and where needed
  mounts: volume specs "artifacts" | "models:ro" | "adapters" | "adapters:ro" | "data",
  emptyDirs: per-pod scratch volumes as "name=/mount/path" (the generator's adapter state and cache).
*/}}

{{- define "vispod.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: vispod
{{- end }}

{{- define "vispod.labels" -}}
{{ include "vispod.selectorLabels" . }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- define "vispod.usesGpu" -}}
{{- $v := index .root.Values .name -}}
{{- if and .root.Values.gpu.enabled (gt (int $v.gpus) 0) }}true{{ end -}}
{{- end }}

{{/* <registry>/<name>:<tag>[-cuda] unless the service's image.repository/tag say otherwise. */}}
{{- define "vispod.image" -}}
{{- $v := index .root.Values .name -}}
{{- $repo := $v.image.repository | default (printf "%s/%s" .root.Values.image.registry .name) -}}
{{- $tag := $v.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- if include "vispod.usesGpu" . }}{{ $tag = printf "%s%s" $tag .root.Values.gpu.imageTagSuffix }}{{ end -}}
{{ printf "%s:%s" $repo $tag }}
{{- end }}

{{- define "vispod.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "vispod.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end }}

{{/* nodeSelector + tolerations: the service's own, plus the GPU pool's when it runs on GPUs. */}}
{{- define "vispod.scheduling" -}}
{{- $v := index .root.Values .name -}}
{{- $gpu := or .forceGpu (include "vispod.usesGpu" .) -}}
{{- $nodeSelector := deepCopy $v.nodeSelector -}}
{{- $tolerations := $v.tolerations -}}
{{- if $gpu }}
{{- $nodeSelector = merge $nodeSelector .root.Values.gpu.nodeSelector -}}
{{- $tolerations = concat .root.Values.gpu.tolerations $v.tolerations -}}
{{- end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* requests/limits, with the GPU count added to limits when the service runs on GPUs. */}}
{{- define "vispod.resources" -}}
{{- $v := index .root.Values .name -}}
{{- $res := deepCopy $v.resources -}}
{{- if or .forceGpu (include "vispod.usesGpu" .) }}
{{- $limits := $res.limits | default dict -}}
{{- $_ := set $limits .root.Values.gpu.resourceName (int $v.gpus) -}}
{{- $_ := set $res "limits" $limits -}}
{{- end }}
{{- toYaml $res }}
{{- end }}

{{- define "vispod.envFrom" -}}
- configMapRef:
    name: vispod-common
- configMapRef:
    name: {{ .name }}
{{- end }}

{{/* Secret references: optional, so an absent Secret only leaves the setting unset. */}}
{{- define "vispod.secretEnv" -}}
{{- if and (eq .name "generator") (eq (include "vispod.engine" .root) "vllm") }}
- name: VISPOD_GENERATOR_OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.vllm.apiKeySecret }}
      key: api-key
{{- end }}
- name: VISPOD_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.kafka.sasl.passwordSecret.name }}
      key: {{ .root.Values.kafka.sasl.passwordSecret.key }}
      optional: true
{{- if has .name (list "generator" "trainer") }}
{{- include "vispod.adapterStoreCredentials" (dict "root" .root "write" (eq .name "trainer")) }}
{{- end }}
{{- if eq .name "judge" }}
{{- range $provider := list "openai" "anthropic" "gemini" "vllm" "tgi" }}
- name: VISPOD_JUDGE_{{ upper $provider }}_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $.root.Values.judge.apiKeySecret }}
      key: {{ $provider }}-api-key
      optional: true
{{- end }}
{{- end }}
{{- if eq .name "voice" }}
- name: VISPOD_VOICE_OPENAI_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.voice.apiKeySecret }}
      key: openai-api-key
      optional: true
{{- end }}
{{- end }}

{{- define "vispod.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- range .emptyDirs }}
{{- $parts := splitList "=" . }}
- name: {{ first $parts }}
  mountPath: {{ last $parts }}
{{- end }}
{{- range .mounts }}
{{- $parts := splitList ":" . }}
- name: {{ first $parts }}
  mountPath: /var/lib/vispod/{{ first $parts }}
  {{- if has "ro" $parts }}
  readOnly: true
  {{- end }}
{{- end }}
{{- if .root.Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/vispod/kafka-ca
  readOnly: true
{{- end }}
{{- if .root.Values.grpc.tls.secretName }}
- name: grpc-tls
  mountPath: /etc/vispod/grpc-tls
  readOnly: true
{{- end }}
{{- if eq .name "generator" }}
- name: lifecycle-keys
  mountPath: /etc/vispod/lifecycle-keys
  readOnly: true
{{- end }}
{{- if eq .name "gate" }}
- name: gate-signing-key
  mountPath: /etc/vispod/gate-signing-key
  readOnly: true
{{- end }}
{{- if eq .name "generator" }}
- name: adapter-keys
  mountPath: /etc/vispod/adapter-keys
  readOnly: true
{{- end }}
{{- if eq .name "trainer" }}
- name: trainer-signing-key
  mountPath: /etc/vispod/trainer-signing-key
  readOnly: true
{{- end }}
{{- end }}

{{- define "vispod.volumes" -}}
- name: tmp
  emptyDir: {}
{{- range .emptyDirs }}
- name: {{ first (splitList "=" .) }}
  emptyDir: {}
{{- end }}
{{- range .mounts }}
{{- $volume := first (splitList ":" .) }}
- name: {{ $volume }}
  persistentVolumeClaim:
    claimName: {{ eq $volume "data" | ternary "trainer-data" (printf "vispod-%s" $volume) }}
{{- end }}
{{- with .root.Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ . }}
{{- end }}
{{- with .root.Values.grpc.tls.secretName }}
- name: grpc-tls
  secret:
    secretName: {{ . }}
{{- end }}
{{- if eq .name "generator" }}
- name: lifecycle-keys
  secret:
    secretName: {{ .root.Values.lifecycle.publicKeysSecret }}
{{- end }}
{{- if eq .name "gate" }}
- name: gate-signing-key
  secret:
    secretName: {{ .root.Values.lifecycle.gateKeySecret }}
{{- end }}
{{- if eq .name "generator" }}
- name: adapter-keys
  secret:
    secretName: {{ .root.Values.adapterStore.publicKeysSecret }}
{{- end }}
{{- if eq .name "trainer" }}
- name: trainer-signing-key
  secret:
    secretName: {{ .root.Values.adapterStore.signingKeySecret }}
    defaultMode: 0400
{{- end }}
{{- end }}

{{/* The adapter store's S3 credentials (optional: without them boto3 uses the pod's identity, e.g. IRSA). */}}
{{- /* Least privilege: the trainer ("write") gets the credentials that may write the store, every reader (the
       generator, adapter-sync) read-only ones. */ -}}
{{- define "vispod.adapterStoreCredentials" -}}
{{- $store := .root.Values.adapterStore -}}
{{- $secret := ternary $store.credentialsSecret $store.readerCredentialsSecret (default false .write) -}}
{{- range $var, $key := dict "ACCESS_KEY_ID" "access-key-id" "SECRET_ACCESS_KEY" "secret-access-key" }}
- name: VISPOD_ADAPTER_STORE_{{ $var }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
      optional: true
{{- end }}
{{- end }}

{{/* Where the signed adapter store is (ConfigMap data; the keys and credentials come from Secrets). */}}
{{- define "vispod.adapterStoreSettings" -}}
{{- $s := .Values.adapterStore -}}
{{- $data := dict "VISPOD_ADAPTER_STORE_URL" $s.url "VISPOD_ADAPTER_STORE_REGION" $s.region -}}
{{- with $s.endpointUrl }}{{ $_ := set $data "VISPOD_ADAPTER_STORE_ENDPOINT_URL" . }}{{ end -}}
{{- toYaml $data }}
{{- end }}

{{/* The serving engine: serving.engine, else tgi when tgi.enabled, else none (the generator's own backend). */}}
{{- define "vispod.engine" -}}
{{- .Values.serving.engine | default (.Values.tgi.enabled | ternary "tgi" "none") -}}
{{- end }}

{{/* The service's own ConfigMap: where it listens and where artifacts go, then .defaults,
     values.<svc>.env, and last .overrides (settings another part of the chart depends on). */}}
{{- define "vispod.configMap" -}}
{{- $v := index .root.Values .name -}}
{{- $prefix := printf "VISPOD_%s_" (upper .name) -}}
{{- $data := dict (printf "%sARTIFACT_ROOT" $prefix) "/var/lib/vispod/artifacts" (printf "%sMETRICS_HOST" $prefix) "0.0.0.0" -}}
{{- if not (or .batch .kafkaOnly) }}{{ $_ := set $data (printf "%sGRPC_HOST" $prefix) "0.0.0.0" }}{{ end -}}
{{- range $k, $val := .defaults }}{{ $_ := set $data $k $val }}{{ end -}}
{{- range $k, $val := $v.env }}{{ $_ := set $data $k (toString $val) }}{{ end -}}
{{- range $k, $val := .overrides }}{{ $_ := set $data $k $val }}{{ end -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .name }}
  labels:
    {{- include "vispod.labels" . | nindent 4 }}
data:
  {{- toYaml $data | nindent 2 }}
{{- end }}

{{/*
A long-running service: ConfigMap, Deployment, Service, PodDisruptionBudget, HorizontalPodAutoscaler
and NetworkPolicy. gRPC (grpc.health.v1) on 8081, Prometheus metrics on 8082. With .kafkaOnly (the gate:
no gRPC server of its own) only 8082 is exposed and probes use its HTTP /healthz and /readyz.
*/}}
{{- define "vispod.service" -}}
{{- $v := index .root.Values .name -}}
{{ include "vispod.configMap" . }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .name }}
  labels:
    {{- include "vispod.labels" . | nindent 4 }}
spec:
  replicas: {{ $v.replicas }}
  selector:
    matchLabels:
      {{- include "vispod.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "vispod.labels" . | nindent 8 }}
      annotations:
        checksum/config: {{ include "vispod.configMap" . | sha256sum }}
        # Settings every service reads at start (Kafka, image roots): a change rolls the pods.
        checksum/common: {{ include (print .root.Template.BasePath "/common.yaml") .root | sha256sum }}
    spec:
      {{- with .serviceAccount }}
      serviceAccountName: {{ . }}
      {{- end }}
      {{- if .apiAccess }}
      # Its token reaches the API server only for what the Role allows (the TGI rollout).
      automountServiceAccountToken: true
      {{- else }}
      automountServiceAccountToken: false
      {{- end }}
      enableServiceLinks: false
      # Longer than the app's 10 s shutdown grace: drain consumers, commit, stop gRPC.
      terminationGracePeriodSeconds: 30
      securityContext:
        {{- include "vispod.podSecurityContext" . | nindent 8 }}
      {{- with .root.Values.image.pullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- include "vispod.scheduling" . | nindent 6 }}
      containers:
        - name: {{ .name }}
          image: {{ include "vispod.image" . }}
          imagePullPolicy: {{ .root.Values.image.pullPolicy }}
          ports:
            {{- if not .kafkaOnly }}
            - {name: grpc, containerPort: 8081, protocol: TCP}
            {{- end }}
            - {name: metrics, containerPort: 8082, protocol: TCP}
          envFrom:
            {{- include "vispod.envFrom" . | nindent 12 }}
          env:
            {{- include "vispod.secretEnv" . | nindent 12 }}
          {{- if or .kafkaOnly .root.Values.grpc.tls.secretName }}
          # No gRPC server, or one behind TLS (kubelet's gRPC probe speaks plaintext): /healthz says the
          # process is up, /readyz that its gRPC server and consumers run.
          startupProbe:
            httpGet: {path: /healthz, port: metrics}
            periodSeconds: 10
            failureThreshold: 30
          readinessProbe:
            httpGet: {path: /readyz, port: metrics}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          livenessProbe:
            httpGet: {path: /healthz, port: metrics}
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          {{- else }}
          # Model loading can take minutes: the startup probe holds the others off until SERVING.
          startupProbe:
            grpc: {port: 8081}
            periodSeconds: 10
            failureThreshold: 60
          readinessProbe:
            grpc: {port: 8081}
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          livenessProbe:
            grpc: {port: 8081}
            periodSeconds: 20
            timeoutSeconds: 5
            failureThreshold: 3
          {{- end }}
          resources:
            {{- include "vispod.resources" . | nindent 12 }}
          securityContext:
            {{- include "vispod.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            {{- include "vispod.volumeMounts" . | nindent 12 }}
      volumes:
        {{- include "vispod.volumes" . | nindent 8 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ .name }}
  labels:
    {{- include "vispod.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "vispod.selectorLabels" . | nindent 4 }}
  ports:
    {{- if not .kafkaOnly }}
    - {name: grpc, port: 8081, targetPort: grpc, protocol: TCP, appProtocol: grpc}
    {{- end }}
    - {name: metrics, port: 8082, targetPort: metrics, protocol: TCP}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .name }}
  labels:
    {{- include "vispod.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "vispod.selectorLabels" . | nindent 6 }}
{{- if $v.autoscaling.enabled }}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ .name }}
  labels:
    {{- include "vispod.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
{{- end }}
{{- if .root.Values.networkPolicy.enabled }}
---
{{- if .kafkaOnly }}
{{ include "vispod.networkPolicy" (dict "root" .root "name" .name) }}
{{- else }}
{{ include "vispod.networkPolicy" (dict "root" .root "name" .name "servingPort" 8081 "servingFrom" (dict "app.kubernetes.io/part-of" "vispod")) }}
{{- end }}
{{- end }}
{{- end }}

{{/* Ingress: servingPort from servingFrom pods, metricsPort (8082) from the monitoring namespace.
     Egress stays open: Kafka and the judges' APIs may live outside the cluster. */}}
{{- define "vispod.networkPolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ .name }}
  labels:
    {{- include "vispod.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "vispod.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    {{- if .servingPort }}
    - from:
        - podSelector:
            matchLabels:
              {{- toYaml .servingFrom | nindent 14 }}
      ports:
        - {port: {{ .servingPort }}, protocol: TCP}
    {{- end }}
    - from:
        - namespaceSelector:
            {{- toYaml .root.Values.networkPolicy.metricsNamespaceSelector | nindent 12 }}
      ports:
        - {port: {{ .metricsPort | default 8082 }}, protocol: TCP}
{{- end }}
