{{- define "caxton-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "caxton-operator.serviceAccountName" -}}
{{- default (include "caxton-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "caxton-operator.selector" -}}
app.kubernetes.io/name: caxton-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "caxton-operator.labels" -}}
{{ include "caxton-operator.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}
