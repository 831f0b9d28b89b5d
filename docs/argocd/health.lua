-- Argo CD health check for minimax.chatos.io/MiniMaxDeployment.
-- Healthy only when Ready=True for the current generation; Progressing while the
-- weights download (with the percentage) or the server starts; Degraded on failure.
local hs = {}
local status = obj.status
local generation = obj.metadata.generation or 0
if status == nil or status.observedGeneration == nil or status.observedGeneration < generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end
local function explain(default)
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    return ready.reason .. ": " .. ready.message
  end
  return default
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = explain("Failed")
  return hs
end
if ready ~= nil and ready.status == "True" and status.phase == "Ready" then
  hs.status = "Healthy"
  hs.message = "Serving " .. tostring(status.servedModelName) .. " at " .. tostring(status.endpoint)
  return hs
end
if status.phase == "Parked" then
  -- Autoscaling parked it (minReplicas 0): it serves again on the next request, through KEDA's HTTP add-on.
  hs.status = "Healthy"
  hs.message = "Parked: no server while idle; the next request wakes it"
  return hs
end
if status.phase == "Stopped" then
  hs.status = "Suspended"
  hs.message = "Scaled to 0 replicas; the weights are kept"
  return hs
end
hs.status = "Progressing"
if status.phase == "Downloading" then
  local progress = status.download ~= nil and status.download.progress or nil
  if progress ~= nil then
    hs.message = "Downloading weights: " .. progress
  else
    hs.message = "Downloading weights"
  end
  return hs
end
hs.message = explain(tostring(status.phase))
return hs
