{{/*
Names. Kubernetes names are DNS labels: everything derived here is cut to 63 characters.
*/}}
{{- define "trtaoti-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trtaoti-operator.fullname" -}}
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

{{- define "trtaoti-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The recommended app.kubernetes.io labels. The selector labels are the immutable subset
(a Deployment's selector cannot change across upgrades).
*/}}
{{- define "trtaoti-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trtaoti-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trtaoti-operator.labels" -}}
helm.sh/chart: {{ include "trtaoti-operator.chart" . }}
{{ include "trtaoti-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trtaoti
{{- end }}

{{- define "trtaoti-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trtaoti-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference from {repository, tag, digest}: the digest wins, the tag defaults to
the chart's appVersion. Call with (dict "image" .Values.x.image "root" $).
*/}}
{{- define "trtaoti-operator.image" -}}
{{- $image := .image }}
{{- if $image.digest }}
{{- printf "%s@%s" $image.repository $image.digest }}
{{- else }}
{{- printf "%s:%s" $image.repository (default .root.Chart.AppVersion $image.tag) }}
{{- end }}
{{- end }}

{{/*
The namespaces the operator watches, de-duplicated; empty means cluster-wide.
*/}}
{{- define "trtaoti-operator.watchNamespaces" -}}
{{- .Values.watchNamespaces | uniq | toJson }}
{{- end }}
