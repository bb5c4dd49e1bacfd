{{- define "flinkjob.fullname" -}}
{{- printf "%s-flinkjob" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}

{{- define "flinkjob.labels" -}}
app.kubernetes.io/name: flinkjob-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "flinkjob.selector" -}}
app.kubernetes.io/name: flinkjob-operator
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: flinkjob-manager
{{- end -}}

{{- define "flinkjob.webhookService" -}}
{{ include "flinkjob.fullname" . }}-webhook
{{- end -}}

{{- define "flinkjob.webhookConfig" -}}
{{ include "flinkjob.fullname" . }}-validating-webhook
{{- end -}}
