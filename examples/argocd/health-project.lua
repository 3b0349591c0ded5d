-- Argo CD health of an Oksa Project (resource.customizations.health.oksa.dev_Project).
local hs = {status = "Progressing", message = "Waiting for Oksa"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then
    hs.message = condition.message
    if condition.status == "True" then
      hs.status = "Healthy"
    elseif condition.reason == "NamespaceTerminating" then
      hs.status = "Progressing"
    else
      hs.status = "Degraded"
    end
  end
end
return hs
