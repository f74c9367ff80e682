{{/*
Names and labels. The release name is used as-is when it already contains the chart name, so
`helm upgrade --install cdrplatform-api-access ./charts/halo-gateway` gives objects named
`cdrplatform-api-access-halo-gateway` and never clashes with Halo's own objects.
*/}}
{{- define "halo-gateway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "halo-gateway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "halo-gateway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "halo-gateway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "halo-gateway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "halo-gateway.labels" -}}
helm.sh/chart: {{ include "halo-gateway.chart" . }}
{{ include "halo-gateway.selectorLabels" . }}
app.kubernetes.io/version: {{ include "halo-gateway.imageTag" . | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: halo
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "halo-gateway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "halo-gateway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "halo-gateway.imageTag" -}}
{{- .Values.image.tag | default .Chart.AppVersion | toString }}
{{- end }}

{{- define "halo-gateway.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "halo-gateway.imageTag" .) }}
{{- end }}
{{- end }}

{{/*
Drain budget. The gateway gets SIGTERM only after the preStop sleep, then drains in-flight
requests for up to shutdownTimeoutSeconds; the kubelet's grace period must cover both or the
drain is cut short by SIGKILL.
*/}}
{{- define "halo-gateway.terminationGracePeriodSeconds" -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add (int .Values.shutdownTimeoutSeconds) (int .Values.preStopSleepSeconds) (int .Values.terminationGraceMarginSeconds) }}
{{- else }}
{{- $min := add (int .Values.shutdownTimeoutSeconds) (int .Values.preStopSleepSeconds) }}
{{- if lt (int .Values.terminationGracePeriodSeconds) (int $min) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be at least shutdownTimeoutSeconds + preStopSleepSeconds (%d), or in-flight requests are killed mid-drain" (int .Values.terminationGracePeriodSeconds) (int $min)) }}
{{- end }}
{{- .Values.terminationGracePeriodSeconds }}
{{- end }}
{{- end }}

{{/*
Environment rendered into the ConfigMap: `configuration` verbatim (keys are environment
variable names, as in Halo's cdrplatform-api-access chart) plus what the chart derives from
other values. Keys the chart derives are refused in `configuration` so ports, probes and the
grace period can never disagree with what the process listens on.
*/}}
{{- define "halo-gateway.environment" -}}
{{- $env := dict }}
{{- range $key, $value := .Values.configuration }}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" $key) }}
{{- fail (printf "configuration.%s: keys become environment variable names and may only hold letters, digits and _ (use __ between sections, __0, __1 for list items)" $key) }}
{{- end }}
{{- if has $key (list "Gateway__Listen" "Gateway__AdminListen" "Gateway__ShutdownTimeout") }}
{{- fail (printf "configuration.%s is set by the chart; use containerPorts.http, containerPorts.admin or shutdownTimeoutSeconds instead" $key) }}
{{- end }}
{{- if or (kindIs "map" $value) (kindIs "slice" $value) }}
{{- fail (printf "configuration.%s must be a single value, not a map or list (write nested keys with __, e.g. configuration.Authentication__Schemes__Bearer__ValidAudiences__0)" $key) }}
{{- end }}
{{- if not (kindIs "invalid" $value) }}
{{- $_ := set $env $key (toString $value) }}
{{- end }}
{{- end }}
{{- $_ := set $env "Gateway__Listen" (printf "0.0.0.0:%d" (int .Values.containerPorts.http)) }}
{{- $_ := set $env "Gateway__AdminListen" (printf "0.0.0.0:%d" (int .Values.containerPorts.admin)) }}
{{- $_ := set $env "Gateway__ShutdownTimeout" (printf "%ds" (int .Values.shutdownTimeoutSeconds)) }}
{{- if and .Values.sidecar.enabled (not (hasKey $env "Gateway__Upstream")) }}
{{- $_ := set $env "Gateway__Upstream" (printf "http://127.0.0.1:%d" (int .Values.sidecar.upstreamPort)) }}
{{- end }}
{{- if hasKey $env "Gateway__Redis__Url" }}
{{- fail "configuration.Gateway__Redis__Url may carry a password: put it in the Secret named by existingSecret (key Gateway__Redis__Url) and set redis.enabled=true" }}
{{- end }}
{{- if and .Values.redis.enabled (not .Values.existingSecret) }}
{{- fail "redis.enabled needs existingSecret: the Secret whose key Gateway__Redis__Url holds the Redis URL" }}
{{- end }}
{{- if not (or (hasKey $env "Gateway__Upstream") .Values.existingSecret .Values.envFrom .Values.extraEnv) }}
{{- fail "configuration.Gateway__Upstream is required: the base URL of Halo's API, e.g. --set configuration.Gateway__Upstream=http://cdrplatform-api:8080 (or provide it through existingSecret/envFrom/extraEnv)" }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* The gateway container, shared by standalone and sidecar mode. */}}
{{- define "halo-gateway.container" -}}
- name: {{ .Values.containerName }}
  image: {{ include "halo-gateway.image" . | quote }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if .Values.args }}
  args:
    {{- toYaml .Values.args | nindent 4 }}
  {{- else if .Values.configFile }}
  args: ["serve", "--config", "/etc/halo-gateway/halo-gateway.toml"]
  {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.containerPorts.http }}
      protocol: TCP
    - name: admin
      containerPort: {{ .Values.containerPorts.admin }}
      protocol: TCP
  envFrom:
    - configMapRef:
        name: {{ include "halo-gateway.fullname" . }}
    {{- if .Values.existingSecret }}
    # Later sources win: the Secret overrides keys also set in `configuration`.
    - secretRef:
        name: {{ .Values.existingSecret }}
    {{- end }}
    {{- with .Values.envFrom }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.extraEnv }}
  env:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.startupProbe }}
  {{- if .enabled }}
  startupProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.livenessProbe }}
  {{- if .enabled }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: admin
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- with .Values.readinessProbe }}
  {{- if .enabled }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: admin
    {{- toYaml (omit . "enabled") | nindent 4 }}
  {{- end }}
  {{- end }}
  {{- if gt (int .Values.preStopSleepSeconds) 0 }}
  lifecycle:
    # Keep serving while the endpoint is removed from Services and the Ingress; the image has
    # no shell, so this is the kubelet's built-in sleep (Kubernetes 1.30+), not `sh -c sleep`.
    preStop:
      sleep:
        seconds: {{ .Values.preStopSleepSeconds }}
  {{- end }}
  {{- with .Values.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.securityContext }}
  securityContext:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if or .Values.configFile .Values.volumeMounts }}
  volumeMounts:
    {{- if .Values.configFile }}
    - name: halo-gateway-config
      mountPath: /etc/halo-gateway
      readOnly: true
    {{- end }}
    {{- with .Values.volumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
{{- end }}
