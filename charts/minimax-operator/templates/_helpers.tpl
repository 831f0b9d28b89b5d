{{- define "minimax-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "minimax-operator.labels" -}}
app.kubernetes.io/name: minimax-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "minimax-operator.selector" -}}
app.kubernetes.io/name: minimax-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "minimax-operator.serviceAccount" -}}
{{- default (include "minimax-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "minimax-operator.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
