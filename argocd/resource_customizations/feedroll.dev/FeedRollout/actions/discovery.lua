-- Argo CD resource actions of a FeedRollout, enabled by phase the way the operator applies
-- them (a command that does not apply is ignored by the operator with a CommandIgnored event,
-- so the button is disabled instead).
local actions = {}
local status = obj.status or {}
local phase = status.phase
local specPaused = obj.spec ~= nil and obj.spec.paused == true
local moving = phase == "Progressing" or phase == "Paused"

local function offer(name, displayName, enabled)
  actions[name] = {["disabled"] = not enabled, ["displayName"] = displayName}
end

offer("promote", "Promote one step", moving)
offer("promote-full", "Promote fully (skip the remaining steps)", moving)
offer("pause", "Pause", phase == "Progressing")
-- spec.paused: true in Git wins over a resume: change Git instead.
offer("resume", "Resume", phase == "Paused" and not specPaused)
offer("abort", "Abort (all traffic back to stable)",
  moving or (phase == "Promoting" and status.stableRevision ~= nil))
offer("retry", "Retry the rollout", phase == "RolledBack" or phase == "Aborted")

return actions
