-- Argo CD health check for trtaoti.dev/TrtAotiModel.
--
-- Argo CD runs this with the live object as the global `obj` and expects a table
-- {status = "Healthy" | "Progressing" | "Degraded", message = "..."}. It reads the status
-- contract the operator keeps (docs/install.md, "Status contract"):
--   * status.observedGeneration: the generation the status describes. Anything older
--     than metadata.generation says nothing about the current spec: Progressing.
--   * conditions Compiled and Ready (metav1.Condition, each with its observedGeneration).
--     Both are False with reason Compiling while compile Jobs run, Ready is False with
--     reason RollingOut while the serving Deployments roll out; any other reason on a
--     False condition is a failure (CompileFailed, a bad model source...): Degraded.
-- Written for Lua 5.1 (Argo CD's gopher-lua): no goto, no integer division.

local PROGRESS_REASONS = { Compiling = true, RollingOut = true, Reconciling = true }

local function find_condition(conditions, type_name)
  if conditions == nil then
    return nil
  end
  for _, condition in ipairs(conditions) do
    if condition.type == type_name then
      return condition
    end
  end
  return nil
end

local function describe(condition)
  local text = condition.type .. "=" .. tostring(condition.status)
  if condition.reason ~= nil and condition.reason ~= "" then
    text = text .. " (" .. condition.reason .. ")"
  end
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local function is_failure(condition)
  return condition ~= nil and condition.status == "False" and not PROGRESS_REASONS[condition.reason or ""]
end

local function is_stale(condition, generation)
  return condition ~= nil and generation ~= nil and condition.observedGeneration ~= nil
    and condition.observedGeneration < generation
end

local function health(object)
  local generation = object.metadata and object.metadata.generation
  local status = object.status
  if status == nil or status.observedGeneration == nil then
    return { status = "Progressing", message = "Waiting for the trtaoti operator to reconcile the model" }
  end
  if generation ~= nil and status.observedGeneration < generation then
    return {
      status = "Progressing",
      message = "Waiting for the operator to observe generation " .. generation
        .. " (status describes generation " .. status.observedGeneration .. ")",
    }
  end

  local compiled = find_condition(status.conditions, "Compiled")
  local ready = find_condition(status.conditions, "Ready")
  -- A condition written for an older generation is stale even if observedGeneration moved.
  if is_stale(compiled, generation) or is_stale(ready, generation) then
    return { status = "Progressing", message = "Waiting for the operator to update the conditions for generation " .. generation }
  end

  if is_failure(compiled) then
    return { status = "Degraded", message = describe(compiled) }
  end
  if is_failure(ready) then
    return { status = "Degraded", message = describe(ready) }
  end
  if ready ~= nil and ready.status == "True" then
    return { status = "Healthy", message = ready.message or "" }
  end
  if ready ~= nil then
    return { status = "Progressing", message = describe(ready) }
  end
  if compiled ~= nil then
    return { status = "Progressing", message = describe(compiled) }
  end
  return { status = "Progressing", message = "Waiting for the Compiled and Ready conditions" }
end

return health(obj)
