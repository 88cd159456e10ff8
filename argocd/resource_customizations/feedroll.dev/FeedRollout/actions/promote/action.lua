-- Argo CD action "promote": sets the command annotation feedroll.dev/command=promote/<nonce>.
-- The operator applies a new value once and records it in status.lastCommandId; the nonce
-- (os.time()) makes every click a new value. The annotation is not in Git, so Argo CD shows
-- no drift and needs no ignoreDifferences.
local os = require("os")
if obj.metadata.annotations == nil then
  obj.metadata.annotations = {}
end
obj.metadata.annotations["feedroll.dev/command"] = "promote/" .. os.time()
return obj
