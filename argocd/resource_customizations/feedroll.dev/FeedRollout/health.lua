-- Argo CD health of a FeedRollout (feedroll.dev/v1alpha1).
--
-- Generation-aware: while status.observedGeneration is behind metadata.generation the status
-- describes an older spec, so the health is Progressing whatever the phase says (a new image
-- pushed to Git must never look Healthy before the operator has seen it).
--
--   Succeeded                       -> Healthy
--   Progressing, Promoting          -> Progressing (with status.actualWeight when it differs
--                                      from the desired weight)
--   Paused (waiting for a human)    -> Suspended, with the Paused condition's reason and message
--   RolledBack, Aborted, Failed     -> Degraded
--
-- Runs in Argo CD's Lua sandbox (base and table libraries only, no string library): messages
-- are built with `..` alone.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(value, fallback)
  if value == nil or value == "" then
    return fallback
  end
  return value
end

-- Where the pods cannot express the desired weight (10% of 4 replicas is 25%) or are not
-- ready yet, what the canary really gets.
local function actual_weight(status)
  if status.actualWeight == nil or status.weight == nil or status.actualWeight == status.weight then
    return ""
  end
  return " (the canary gets " .. status.actualWeight .. "% of the traffic, desired " .. status.weight .. "%)"
end

local status = obj.status
local generation = obj.metadata.generation

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the operator is removing the workloads it created"
  return hs
end

if status == nil or status.observedGeneration == nil then
  hs.status = "Progressing"
  if generation ~= nil then
    hs.message = "Waiting for the operator to observe generation " .. generation
  else
    hs.message = "Waiting for the operator to observe the FeedRollout"
  end
  return hs
end

if generation ~= nil and status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
    .. " (status is at generation " .. status.observedGeneration .. ")"
  return hs
end

local phase = status.phase

if phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to start the rollout"
  return hs
end

if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = text(status.message, "Stable runs the latest revision")
  return hs
end

if phase == "Progressing" or phase == "Promoting" then
  hs.status = "Progressing"
  hs.message = phase .. ": " .. text(status.message, "weight " .. (status.weight or 0) .. "%")
    .. actual_weight(status)
  return hs
end

if phase == "Paused" then
  hs.status = "Suspended"
  local paused = condition(status, "Paused")
  local reason = status.pauseReason
  local message = status.message
  if paused ~= nil and paused.status == "True" then
    reason = text(paused.reason, reason)
    message = text(paused.message, message)
  end
  hs.message = "Paused (" .. text(reason, "Unknown") .. "): "
    .. text(message, "waiting for a human to promote, resume or abort")
    .. actual_weight(status)
  return hs
end

if phase == "RolledBack" or phase == "Aborted" or phase == "Failed" then
  hs.status = "Degraded"
  local healthy = condition(status, "Healthy")
  local message = status.message
  if healthy ~= nil and healthy.status == "False" then
    message = text(healthy.message, message)
  end
  hs.message = phase .. ": " .. text(message, "see kubectl describe feedrollout")
  return hs
end

hs.status = "Unknown"
hs.message = "Unknown phase " .. phase
return hs
