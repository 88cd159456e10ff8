"""Run Argo CD resource-customization Lua scripts with the real lua5.1 interpreter.

Argo CD runs health.lua, discovery.lua and action.lua in gopher-lua (Lua 5.1) with a sandbox:
the base, table and package libraries, a "safe" os library (time, date, clock, difftime) that
`require("os")` also returns, no string/math/io/debug libraries, and the global `obj` holding the
resource as decoded from JSON. This module reproduces that sandbox in a real Lua 5.1 process:

- the object is converted from YAML/JSON to a Lua table literal (JSON null -> nil, as Argo CD's
  decodeValue does);
- the script runs under setfenv with only the libraries above; the string metatable's __index
  is removed so `s:sub()` fails as it does without gopher-lua's string library;
- os.time() is frozen at a fixed value so action outputs (nonces) are reproducible;
- the returned table is encoded to JSON the way gopher-json does (an empty table becomes []),
  and action results get Argo CD's cleanReturnedObj (an empty [] where the input had an
  object is put back to {}).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path
from typing import Any

FROZEN_TIME = 1700000000
LUA = shutil.which("lua5.1")


def to_lua(value: Any) -> str:
    """A Lua literal for a JSON-like value."""
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ValueError("NaN and infinities are not JSON")
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, list):
        return "{" + ", ".join(to_lua(v) for v in value) + "}"
    if isinstance(value, dict):
        items = []
        for k, v in value.items():
            if v is None:
                continue  # a nil field is an absent field, as in Argo CD
            items.append("[" + lua_string(str(k)) + "] = " + to_lua(v))
        return "{" + ", ".join(items) + "}"
    # YAML timestamps and dates arrive as strings in Kubernetes JSON.
    return lua_string(str(value))


def lua_string(s: str) -> str:
    out = ['"']
    for byte in s.encode("utf-8"):
        ch = chr(byte)
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif 32 <= byte < 127:
            out.append(ch)
        else:
            out.append("\\%d" % byte)
    out.append('"')
    return "".join(out)


# Runs outside the sandbox: builds the environment, runs the script, encodes the result.
_DRIVER = r"""
local script_path, frozen = arg[1], tonumber(arg[2])
local f = assert(io.open(script_path, "rb"))
local source = f:read("*a")
f:close()

local safe_os = {
  time = function(t) if t == nil then return frozen end return os.time(t) end,
  date = function(fmt, t) return os.date(fmt, t or frozen) end,
  clock = os.clock,
  difftime = os.difftime,
}
local env = {
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs, pcall = pcall,
  print = print, rawequal = rawequal, rawget = rawget, rawset = rawset, select = select,
  setmetatable = setmetatable, getmetatable = getmetatable, tonumber = tonumber,
  tostring = tostring, type = type, unpack = unpack, xpcall = xpcall,
  table = table, os = safe_os,
  require = function(name)
    if name == "os" then return safe_os end
    error("module '" .. tostring(name) .. "' not found (Argo CD's sandbox only preloads os)")
  end,
}
env._G = env
env.obj = OBJ

local chunk, err = loadstring(source, "=" .. script_path)
if not chunk then io.stderr:write("compile error: " .. err .. "\n") os.exit(3) end
setfenv(chunk, env)

-- No string library in Argo CD's sandbox: string methods must fail there, so here too.
local string_mt = getmetatable("")
local saved_index = string_mt.__index
string_mt.__index = nil
local ok, result = pcall(chunk)
string_mt.__index = saved_index
if not ok then io.stderr:write("runtime error: " .. tostring(result) .. "\n") os.exit(4) end

local function is_array(t)
  local n = 0
  for k in pairs(t) do
    if type(k) ~= "number" or k < 1 or math.floor(k) ~= k then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return true
end

local function encode(v)
  local tv = type(v)
  if tv == "nil" then return "null" end
  if tv == "boolean" then return tostring(v) end
  if tv == "number" then
    if v ~= v or v == math.huge or v == -math.huge then error("cannot encode " .. tostring(v)) end
    if math.floor(v) == v and math.abs(v) < 2^53 then return string.format("%d", v) end
    return string.format("%.17g", v)
  end
  if tv == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      return string.format("\\u%04x", string.byte(c))
    end) .. '"'
  end
  if tv == "table" then
    local parts = {}
    if is_array(v) then
      for i = 1, #v do parts[#parts + 1] = encode(v[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do
      if type(k) ~= "string" then error("cannot encode a table key of type " .. type(k)) end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    for _, k in ipairs(keys) do parts[#parts + 1] = encode(k) .. ":" .. encode(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("cannot encode a " .. tv)
end

io.write(encode(result))
"""


class LuaError(RuntimeError):
    """The script failed to compile or run, or returned something that is not JSON."""


def run_script(script: Path, obj: dict[str, Any], frozen_time: int = FROZEN_TIME) -> Any:
    """Runs `script` with `obj` as the global `obj`; returns its result decoded from JSON."""
    if LUA is None:
        raise LuaError("lua5.1 is not installed (scripts/install-deps.sh installs it)")
    program = "local OBJ = " + to_lua(obj) + "\n" + _DRIVER
    proc = subprocess.run(
        [LUA, "-", str(script), str(frozen_time)],
        input=program.encode(),
        capture_output=True,
        timeout=30,
    )
    if proc.returncode != 0:
        raise LuaError(f"{script}: exit {proc.returncode}: {proc.stderr.decode().strip()}")
    return json.loads(proc.stdout.decode())


def clean_returned(new: Any, old: Any) -> Any:
    """Argo CD's cleanReturnedObj: Lua cannot tell {} from [], so an empty array where the
    original object had a map is put back to a map (recursively, also inside arrays)."""
    if isinstance(new, dict) and isinstance(old, dict):
        return {k: clean_returned(v, old[k]) if k in old else v for k, v in new.items()}
    if isinstance(new, list) and isinstance(old, dict) and not new:
        return old
    if isinstance(new, list) and isinstance(old, list):
        return [clean_returned(n, old[i]) if i < len(old) else n for i, n in enumerate(new)]
    return new
