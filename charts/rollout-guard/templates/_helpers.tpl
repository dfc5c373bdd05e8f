{{/* The name of every object: the release name when it holds the chart name, else both. */}}
{{- define "rollout-guard.fullname" -}}
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

{{- define "rollout-guard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Pod selector: immutable on the Deployment, so only name and instance. */}}
{{- define "rollout-guard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rollout-guard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rollout-guard.labels" -}}
{{ include "rollout-guard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The Service name the API server dials and the serving certificate is issued for. */}}
{{- define "rollout-guard.dnsNames" -}}
- {{ include "rollout-guard.fullname" . }}.{{ .Release.Namespace }}.svc
- {{ include "rollout-guard.fullname" . }}.{{ .Release.Namespace }}.svc.cluster.local
{{- end -}}

{{- define "rollout-guard.certMode" -}}
{{- $mode := .Values.certificates.mode -}}
{{- if not (has $mode (list "cert-manager" "self" "provided")) -}}
{{- fail (printf "certificates.mode: expected cert-manager, self or provided, found %q" $mode) -}}
{{- end -}}
{{- $mode -}}
{{- end -}}

{{/* Whether the webhook entries get matchConditions (admissionregistration v1, 1.28+). */}}
{{- define "rollout-guard.matchConditions" -}}
{{- $v := toString .Values.webhooks.matchConditions -}}
{{- if eq $v "auto" -}}
{{- if semverCompare ">=1.28-0" .Capabilities.KubeVersion.Version -}}true{{- end -}}
{{- else if eq $v "true" -}}true
{{- else if ne $v "false" -}}
{{- fail (printf "webhooks.matchConditions: expected auto, true or false, found %q" $v) -}}
{{- end -}}
{{- end -}}

{{/* A CEL list literal of names; Kubernetes user and group names hold no quote. */}}
{{- define "rollout-guard.celList" -}}
{{- $quoted := list -}}
{{- range . -}}
{{- if or (contains "'" .) (contains "\\" .) -}}
{{- fail (printf "exempt identity %q holds a quote or backslash" .) -}}
{{- end -}}
{{- $quoted = append $quoted (printf "'%s'" .) -}}
{{- end -}}
[{{ join ", " $quoted }}]
{{- end -}}

{{/* One webhook entry. Arguments: root, kind (plural), group, versions, path, failurePolicy,
     and mutating (reinvocationPolicy). */}}
{{- define "rollout-guard.webhook" -}}
{{- $root := .root -}}
{{- $v := $root.Values.webhooks -}}
- name: {{ .kind }}.{{ .verb }}.rollout-guard.io
  failurePolicy: {{ required (printf "webhooks.%s.failurePolicy.%s" .section .kind) .failurePolicy }}
  {{- if .mutating }}
  reinvocationPolicy: IfNeeded
  {{- end }}
  clientConfig:
    {{- if and (eq (include "rollout-guard.certMode" $root) "provided") $root.Values.certificates.caBundle }}
    caBundle: {{ $root.Values.certificates.caBundle }}
    {{- end }}
    {{- if $v.url }}
    url: {{ printf "%s%s" (trimSuffix "/" $v.url) .path }}
    {{- else }}
    service:
      namespace: {{ $root.Release.Namespace }}
      name: {{ include "rollout-guard.fullname" $root }}
      path: {{ .path }}
      port: 443
    {{- end }}
  rules:
    - apiGroups: [{{ .group | quote }}]
      apiVersions: [{{ range $i, $a := .versions }}{{ if $i }}, {{ end }}{{ $a | quote }}{{ end }}]
      operations: ["CREATE", "UPDATE"]
      resources: [{{ .kind | quote }}]
      scope: Namespaced
  admissionReviewVersions: ["v1"]
  sideEffects: None
  matchPolicy: Equivalent
  timeoutSeconds: {{ $v.timeoutSeconds }}
  {{- if include "rollout-guard.matchConditions" $root }}
  # The exempt identities never reach the webhook, so an outage cannot block the controller.
  matchConditions:
    - name: not-an-exempt-user
      expression: {{ printf "!(request.userInfo.username in %s)" (include "rollout-guard.celList" (include "rollout-guard.exemptUsers" $root | fromJsonArray)) | quote }}
    {{- with $root.Values.exemptGroups }}
    - name: not-in-an-exempt-group
      expression: {{ printf "!request.userInfo.groups.exists(g, g in %s)" (include "rollout-guard.celList" .) | quote }}
    {{- end }}
  {{- end }}
  namespaceSelector:
    {{- if $v.namespaceSelector }}
    {{- toYaml $v.namespaceSelector | nindent 4 }}
    {{- else }}
    matchExpressions:
      - key: rollout-guard.io/ignore
        operator: DoesNotExist
      - key: kubernetes.io/metadata.name
        operator: NotIn
        values: [{{ range $i, $n := (concat $v.excludeNamespaces (list $root.Release.Namespace) | uniq) }}{{ if $i }}, {{ end }}{{ $n | quote }}{{ end }}]
    {{- end }}
  {{- with $v.objectSelector }}
  objectSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{/* Annotations of both webhook configurations. */}}
{{- define "rollout-guard.webhookAnnotations" -}}
{{- if eq (include "rollout-guard.certMode" .) "cert-manager" -}}
annotations:
  # cainjector fills every entry's caBundle from this Certificate's CA.
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "rollout-guard.fullname" . }}
{{- end -}}
{{- end -}}

{{/* multicluster.role, checked: none, rollouts or primary. */}}
{{- define "rollout-guard.multiclusterRole" -}}
{{- $role := .Values.multicluster.role | default "none" -}}
{{- if not (has $role (list "none" "rollouts" "primary")) -}}
{{- fail (printf "multicluster.role: expected none, rollouts or primary, found %q" $role) -}}
{{- end -}}
{{- $role -}}
{{- end -}}

{{/* Where the multicluster Secrets are read: a namespace or "all". */}}
{{- define "rollout-guard.secretNamespace" -}}
{{- $role := include "rollout-guard.multiclusterRole" . -}}
{{- if .Values.multicluster.secretNamespace -}}
{{- .Values.multicluster.secretNamespace -}}
{{- else if eq $role "rollouts" -}}
argo-rollouts
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Whether a webhook entry for KIND (plural) is rendered: every kind in one cluster; in the
     Rollouts cluster only Rollouts and Services (VirtualServices and DestinationRules live in the
     primary), in the primary only VirtualServices and DestinationRules. Argument: dict root, kind. */}}
{{- define "rollout-guard.webhookKind" -}}
{{- $role := include "rollout-guard.multiclusterRole" .root -}}
{{- if eq $role "rollouts" -}}
{{- if has .kind (list "rollouts" "services") }}true{{ end -}}
{{- else if eq $role "primary" -}}
{{- if has .kind (list "virtualservices" "destinationrules") }}true{{ end -}}
{{- else -}}
true
{{- end -}}
{{- end -}}

{{/* The users the matchConditions keep away from the webhook: exemptUsers, and in the primary the
     remote controllers' identity (serve exempts it: --primary-writer). */}}
{{- define "rollout-guard.exemptUsers" -}}
{{- $users := .Values.exemptUsers -}}
{{- if and (eq (include "rollout-guard.multiclusterRole" .) "primary") .Values.multicluster.primaryWriter -}}
{{- $users = append $users .Values.multicluster.primaryWriter | uniq -}}
{{- end -}}
{{- toJson $users -}}
{{- end -}}
