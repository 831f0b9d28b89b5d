-- Argo CD health check for minimax.chatos.io/MiniMaxModelCache.
-- Healthy once the revision asked for is verified for the current generation; Progressing
-- while it downloads (with the percentage; servers keep an older verified commit meanwhile);
-- Degraded when a person must act (download failed, name conflict, quota, invalid spec).
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
if status.phase == "Failed" then
  hs.status = "Degraded"
  if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
    hs.message = ready.reason .. ": " .. ready.message
  else
    hs.message = "Failed"
  end
  return hs
end
if ready ~= nil and ready.status == "True" and status.phase == "Ready" then
  hs.status = "Healthy"
  hs.message = tostring(status.repo) .. " " .. tostring(status.revision) .. " verified at commit " .. tostring(status.commit)
  return hs
end
hs.status = "Progressing"
local progress = status.download ~= nil and status.download.progress or nil
if status.phase == "Downloading" and progress ~= nil then
  hs.message = "Downloading " .. tostring(status.revision) .. ": " .. progress
elseif ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = ready.reason .. ": " .. ready.message
else
  hs.message = tostring(status.phase)
end
return hs
