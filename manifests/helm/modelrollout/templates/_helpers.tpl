{{/* The chart's full name: the release name, prefixed with the chart's unless it already contains it. */}}
{{- define "modelrollout.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Deployment, Service, (Cluster)Role and PDB: `<fullname>-operator`, as the kustomize base names them. */}}
{{- define "modelrollout.operatorName" -}}
{{- printf "%s-operator" (include "modelrollout.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "modelrollout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "modelrollout.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "modelrollout.peeringName" -}}
{{- default (include "modelrollout.fullname" .) .Values.peering.name -}}
{{- end -}}

{{- define "modelrollout.webhookSecretName" -}}
{{- default (printf "%s-webhook-token" (include "modelrollout.fullname" .)) .Values.webhookToken.existingSecret -}}
{{- end -}}

{{/* The namespaces a namespaced operator watches: scope.namespaces, or the release's own. */}}
{{- define "modelrollout.watchedNamespaces" -}}
{{- $namespaces := .Values.scope.namespaces | default (list .Release.Namespace) -}}
{{- toJson (uniq $namespaces) -}}
{{- end -}}

{{- define "modelrollout.selectorLabels" -}}
app.kubernetes.io/name: modelrollout
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "modelrollout.labels" -}}
app.kubernetes.io/name: modelrollout
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: modelrollout
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/*
The operator's rights inside a namespace it manages, with the peering resource (clusterkopfpeerings or
kopfpeerings) as the argument's `peering`. The same rules as manifests/base/clusterrole.yaml and
manifests/namespaced/role.yaml; tests/integration/test_helm.py checks that they stay the same.
*/}}
{{- define "modelrollout.namespacedRules" -}}
# Watch ModelDeployments; write only their status (the spec belongs to Git).
- apiGroups: [modelrollout.io]
  resources: [modeldeployments]
  verbs: [get, list, watch]
- apiGroups: [modelrollout.io]
  resources: [modeldeployments/status]
  verbs: [get, patch, update]
# Read analysis templates.
- apiGroups: [modelrollout.io]
  resources: [modelanalysistemplates]
  verbs: [get, list, watch]
# The children it owns: one Deployment per revision, the Services, the routing objects.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [networking.istio.io]
  resources: [virtualservices]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [traefik.io]
  resources: [ingressroutes, traefikservices]
  verbs: [get, list, watch, create, patch, update, delete]
# Job metrics: one Job per measurement (owned, removed by its TTL), and its pod's termination message.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Before a shadow on Gateway API: whether the parents' GatewayClasses declare HTTPRouteRequestMirror.
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways]
  verbs: [get]
# Credentials named by analysis templates (Prometheus) and by notifications (webhook URLs): read by name only, never listed.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# Events for kubectl describe (ours and kopf's).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- if .root.Values.peering.enabled }}
# Peering (active/standby): kopf watches the peering object and patches its keep-alive into it; the
# standby replica reads it. Only the operator's own peering object can be read or written.
- apiGroups: [kopf.dev]
  resources: [{{ .peering }}]
  verbs: [list, watch]
- apiGroups: [kopf.dev]
  resources: [{{ .peering }}]
  resourceNames: [{{ include "modelrollout.peeringName" .root }}]
  verbs: [get, patch]
{{- end }}
{{- end -}}

{{/* What is cluster-scoped by nature, read-only: kopf's CRD discovery, cluster templates, GatewayClasses. */}}
{{- define "modelrollout.clusterReadRules" -}}
# kopf discovers the resources it watches.
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
- apiGroups: [modelrollout.io]
  resources: [clustermodelanalysistemplates]
  verbs: [get, list, watch]
# Before a shadow on Gateway API: whether the Gateway's GatewayClass declares HTTPRouteRequestMirror.
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses]
  verbs: [get]
{{- end -}}
