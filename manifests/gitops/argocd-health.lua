-- Argo CD health check for modelrollout.io/ModelDeployment.
-- Install: argocd-cm data key "resource.customizations.health.modelrollout.io_ModelDeployment".
-- Healthy only when the operator has seen the current generation and reports Ready.
local hs = {}
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the modelrollout operator"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to see generation " .. obj.metadata.generation
  return hs
end
local phase = obj.status.phase
local message = obj.status.message or ""
if phase == "Healthy" then
  hs.status = "Healthy"
elseif phase == "Paused" then
  -- Waiting for a person (a pause step, an inconclusive analysis, or kubectl modelrollout pause).
  hs.status = "Suspended"
elseif phase == "Degraded" then
  hs.status = "Degraded"
elseif phase == "Progressing" or phase == "Pending" then
  hs.status = "Progressing"
else
  hs.status = "Unknown"
end
hs.message = message
return hs
