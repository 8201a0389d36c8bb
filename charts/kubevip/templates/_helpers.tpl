{{/* The objects' name: nameOverride, else "kube-vip" (kube-vip's chart and manifests use it, so a
helm upgrade from kube-vip's chart updates its DaemonSet in place: a rolling swap). */}}
{{- define "kubevip.name" -}}
{{- default "kube-vip" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubevip.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- include "kubevip.name" . }}
{{- end }}
{{- end }}

{{- define "kubevip.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride | default "kube-system" }}
{{- end }}

{{- define "kubevip.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "kubevip.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubevip.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kubevip.labels" -}}
helm.sh/chart: {{ include "kubevip.chart" . }}
{{ include "kubevip.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "kubevip.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kubevip.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* "true" / "false" from kube-vip's boolean spellings (strings or YAML booleans). */}}
{{- define "kubevip.toBool" -}}
{{- $v := lower (toString .) -}}
{{- if or (eq $v "true") (eq $v "1") -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* The metrics/health listen address as given (env.prometheus_server, default ":2112"). */}}
{{- define "kubevip.listen" -}}
{{- if hasKey .Values.env "prometheus_server" }}{{ toString .Values.env.prometheus_server }}{{ else }}:2112{{ end }}
{{- end }}

{{/* Lease namespace: rbac.leaseNamespace, else env.vip_leasenamespace, else the release namespace. */}}
{{- define "kubevip.leaseNamespace" -}}
{{- .Values.rbac.leaseNamespace | default .Values.env.vip_leasenamespace | default (include "kubevip.namespace" .) }}
{{- end }}
