-- Argo CD health of an Oksa BranchRelease (resource.customizations.health.oksa.dev_BranchRelease).
-- Healthy only when Oksa has seen the current spec and every component is ready.
local hs = {status = "Progressing", message = "Waiting for Oksa"}
if obj.status == nil then
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.message = "Waiting for Oksa to see generation " .. obj.metadata.generation
  return hs
end
local ready, degraded, stalled
for _, condition in ipairs(obj.status.conditions or {}) do
  if condition.type == "Ready" then ready = condition end
  if condition.type == "Degraded" then degraded = condition end
  if condition.type == "Stalled" then stalled = condition end
end
local phase = obj.status.phase
if phase == "Ready" then
  hs.status = "Healthy"
  hs.message = (ready and ready.message) or "Ready"
elseif stalled ~= nil then
  -- Stalled (kstatus): only a change fixes it. Anything else may still resolve by itself (a
  -- readiness probe that has not passed yet): Progressing, with the reason if there is one.
  if stalled.status == "True" then
    hs.status = "Degraded"
    hs.message = stalled.message
  elseif degraded ~= nil and degraded.status == "True" then
    hs.message = degraded.message
  else
    hs.message = (ready and ready.message) or phase or "Waiting for Oksa"
  end
elseif phase == "Degraded" or phase == "Invalid" then
  -- An Oksa from before the Stalled condition.
  hs.status = "Degraded"
  if degraded ~= nil and degraded.status == "True" then
    hs.message = degraded.message
  elseif ready ~= nil then
    hs.message = ready.message
  else
    hs.message = phase
  end
else
  hs.message = (ready and ready.message) or phase or "Waiting for Oksa"
end
return hs
