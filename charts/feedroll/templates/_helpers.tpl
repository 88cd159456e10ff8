{{/* Name of the chart, overridable. */}}
{{- define "feedroll.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the objects: "<release>-feedroll" unless the release name already says it. */}}
{{- define "feedroll.fullname" -}}
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

{{/* Name of the operator's metrics Service (also the Prometheus `job` label). */}}
{{- define "feedroll.metricsServiceName" -}}
{{- printf "%s-metrics" (include "feedroll.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object of the release. */}}
{{- define "feedroll.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: feedroll
{{- end -}}

{{/* Labels on the operator's objects. */}}
{{- define "feedroll.labels" -}}
{{ include "feedroll.commonLabels" . }}
{{ include "feedroll.selectorLabels" . }}
{{- end -}}

{{/* Labels that select the operator pods (immutable once installed). */}}
{{- define "feedroll.selectorLabels" -}}
app.kubernetes.io/name: {{ include "feedroll.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* ServiceAccount the operator runs as. */}}
{{- define "feedroll.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "feedroll.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Operator image reference: the digest wins over the tag; the tag defaults to appVersion. */}}
{{- define "feedroll.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Cross-field checks the values schema cannot phrase clearly. Included by the Deployment, so
every render runs them.
*/}}
{{- define "feedroll.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) -}}
{{- fail (printf "replicaCount is %d but leaderElection.enabled is false: two operators would reconcile the same FeedRollouts. Enable leaderElection or set replicaCount: 1." (int .Values.replicaCount)) -}}
{{- end -}}
{{- if and .Values.rbac.namespaced (not .Values.watchNamespace) -}}
{{- fail "rbac.namespaced is true but watchNamespace is empty: a namespaced Role can only cover one namespace. Set watchNamespace, or rbac.namespaced: false for a ClusterRole." -}}
{{- end -}}
{{- end -}}

{{/*
The operator's permissions, written once. Used by the ClusterRole (default) or, with
rbac.namespaced, by the Role in watchNamespace. The Lease rule is separate (lease-role.yaml):
it is always a namespaced Role in the release namespace.
*/}}
{{- define "feedroll.rules" -}}
# Exactly what the operator's code uses (operator/src/controller/rbac.rs lists each permission
# with its reason; operator/tests/it/rbac.rs fails when these rules grant more or less).
#
# FeedRollouts: watch them (list/watch feed the controller's cache), read one (get), and add or
# remove the clean-up finalizer (a JSON patch of metadata.finalizers). The operator never
# creates, replaces or deletes FeedRollouts: Git or kubectl owns them.
- apiGroups: ["feedroll.dev"]
  resources: ["feedrollouts"]
  verbs: ["get", "list", "watch", "patch"]
# Status is where all rollout progress lives (phase, step, weight, analysis records), written
# with server-side apply (a patch) under the operator's own field manager.
- apiGroups: ["feedroll.dev"]
  resources: ["feedrollouts/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion: true on the objects it creates need update on the
# owner's finalizers subresource (OwnerReferencesPermissionEnforcement admission).
# Not granted on purpose: feedrollouts/scale. The HorizontalPodAutoscaler controller uses the
# scale subresource with its own permissions; the operator only reads spec.replicas.
- apiGroups: ["feedroll.dev"]
  resources: ["feedrollouts/finalizers"]
  verbs: ["update"]
# The stable and canary workloads of each FeedRollout: watched as owned (their rollout state
# comes from that watch's cache, never a GET), applied (create on the first apply), deleted on
# clean-up.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Services (one for all pods, one per track) and the ConfigMap with the ranking profiles and
# in-app traffic shares: watched as owned, applied, deleted on clean-up.
- apiGroups: [""]
  resources: ["services", "configmaps"]
  verbs: ["list", "watch", "create", "patch", "delete"]
# Canary pods are read, never changed: CrashLoopBackOff and restart counts trigger an
# immediate rollback.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
# The Secrets spec.analysis.prometheus names (bearer token, basic auth, header values, CA
# bundle), read by name only: never listed or watched, so no other Secret's data is seen. (A CA
# in a ConfigMap is read with the configmaps list above, filtered by name.)
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
# Gateway API traffic: the operator applies one HTTPRoute per FeedRollout with exact backend
# weights, and when the spec changes lists the rollout's routes to delete one it no longer asks
# for (traffic mode or route name changed).
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["list", "create", "patch", "delete"]
# A Kubernetes Event (events.k8s.io/v1) for every decision (RolloutStarted, StepAdvanced,
# RolledBack...). Each decision is its own Event, never a patched series, so create only.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* A Prometheus duration ("2h", "1h30m", "90s") in seconds, for comparisons in PromQL. */}}
{{- define "feedroll.durationSeconds" -}}
{{- $units := dict "ms" 0.001 "s" 1.0 "m" 60.0 "h" 3600.0 "d" 86400.0 "w" 604800.0 "y" 31536000.0 -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(ms|s|m|h|d|w|y)" . -1 -}}
{{- $n := regexFind "^[0-9]+" . | float64 -}}
{{- $unit := regexReplaceAll "^[0-9]+" . "" -}}
{{- $total = addf $total (mulf $n (get $units $unit)) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
A multi-window burn-rate condition of the feed alerts: the ratio <prefix>rate(bad) / rate(total)
per (namespace, rollout) above the threshold over the long and the short window. Args: prefix
("" or "1 - " when `bad` counts the good requests), bad, total (series selectors), windows
(dict with long, short), threshold.
*/}}
{{- define "feedroll.feedBurn" -}}
{{- $args := . }}
{{- range $i, $w := list .windows.long .windows.short }}
{{- if $i }}
and
{{ end -}}
(
  {{ $args.prefix }}sum by (namespace, rollout) (rate({{ $args.bad }}[{{ $w }}]))
  / sum by (namespace, rollout) (rate({{ $args.total }}[{{ $w }}]))
) > {{ $args.threshold }}
{{- end }}
{{- end }}
