"""The Lua script behind :mod:`transport.stores.redis_store` (layout and rules are documented there).

One script implements every job machine command; Redis runs it atomically per chunk of commands.
:data:`LUA` is it as an ``EVALSHA`` script; :func:`library` as a Redis Functions library (Redis 7
and later), whose functions are built once at load rather than by every call.
"""

import hashlib
from typing import Final

BODY: Final = r"""
-- Troupe's job queue commands over Redis keys; transport/stores/redis_store.py has the layout.
-- Arguments are read in order by arg(); PUC Lua evaluates expression lists left to right.
-- A call's state: its key prefix and arguments, the retry policy, the counters (set by run()).
local P, A, pos
local ORDER, READY, DELAYED, RETRYING, RUNNING, IDEM, META, DEAD
local LANE_FREE, LANE_SEEN, LANE_LEASE, LANE_ALIVE, NUDGE
local FIXED, BASE, MAXD, MULT, JIT
local ops, seq, qseq, epoch
local call  -- redis.call, which a library may only take at call time
local function arg() pos = pos + 1; return A[pos] end
local TWO40 = 1099511627776
local STATUSES = {"PENDING", "RUNNING", "SUCCESS", "FAILED", "RETRYING", "DEAD", "CANCELLED"}
-- A job's fields in job_to_plain's order, then seq: row[9] is the status, row[10] the attempts.
local FIELDS = {"id", "type", "payload", "priority", "max_retries", "timeout_seconds", "scheduled_at",
  "idempotency_key", "status", "attempts", "created_at", "updated_at", "lease_expires_at",
  "attempts_at_requeue", "requeue_count", "seq"}

local function jk(id) return P .. "job:" .. id end
local function tk(jtype) return P .. "type:" .. jtype end
local function fmt(x) return string.format("%.17g", x) end
local function row(id) return call("HMGET", jk(id), unpack(FIELDS)) end
-- Status sets by seq; RUNNING has none: the lease set `running` lists those jobs.
local function st_add(status, seqs, id)
  if status ~= "RUNNING" then call("ZADD", P .. "st:" .. status, seqs, id) end
end
local function st_rem(status, id)
  if status ~= "RUNNING" then call("ZREM", P .. "st:" .. status, id) end
end

-- The machine's jitter generator: FNV-1a 64 of the seed, then one splitmix64 draw. A 64-bit
-- word is four 16-bit limbs, low first, so every product stays exact in a double.
local M16 = 65536
local function mul64(a, b)
  local r0 = a[1] * b[1]
  local r1 = a[1] * b[2] + a[2] * b[1]
  local r2 = a[1] * b[3] + a[2] * b[2] + a[3] * b[1]
  local r3 = a[1] * b[4] + a[2] * b[3] + a[3] * b[2] + a[4] * b[1]
  local c0 = r0 % M16
  r1 = r1 + (r0 - c0) / M16
  local c1 = r1 % M16
  r2 = r2 + (r1 - c1) / M16
  local c2 = r2 % M16
  r3 = r3 + (r2 - c2) / M16
  return {c0, c1, c2, r3 % M16}
end
local function add64(a, b)
  local out, carry = {}, 0
  for k = 1, 4 do
    local s = a[k] + b[k] + carry
    out[k] = s % M16
    carry = (s - out[k]) / M16
  end
  return out
end
local function xor64(a, b)
  return {bit.bxor(a[1], b[1]), bit.bxor(a[2], b[2]), bit.bxor(a[3], b[3]), bit.bxor(a[4], b[4])}
end
local function shr64(a, n)
  local q, r = math.floor(n / 16), n % 16
  local p = 2 ^ r
  local out = {}
  for k = 1, 4 do
    out[k] = math.floor((a[k + q] or 0) / p) + ((a[k + q + 1] or 0) % p) * (M16 / p)
  end
  return out
end
local FNV_OFFSET = {0x2325, 0x8422, 0x9CE4, 0xCBF2}
local FNV_PRIME = {0x01B3, 0x0000, 0x0100, 0x0000}
local GOLDEN = {0x7C15, 0x7F4A, 0x79B9, 0x9E37}
local MIX1 = {0xE5B9, 0x1CE4, 0x476D, 0xBF58}
local MIX2 = {0x11EB, 0x1331, 0x49BB, 0x94D0}
local function first_draw(seed)
  local h = FNV_OFFSET
  for k = 1, #seed do
    h = mul64({bit.bxor(h[1], string.byte(seed, k)), h[2], h[3], h[4]}, FNV_PRIME)
  end
  local z = add64(h, GOLDEN)
  z = mul64(xor64(z, shr64(z, 30)), MIX1)
  z = mul64(xor64(z, shr64(z, 27)), MIX2)
  z = shr64(xor64(z, shr64(z, 31)), 11)
  return (z[1] + z[2] * 65536 + z[3] * 4294967296 + z[4] * 281474976710656) / 9007199254740992
end

-- RetryPolicy.delay(attempt, rng), operation for operation.
local function retry_delay(attempt, seed)
  local nominal = BASE
  if not FIXED then
    local growth = MULT ^ (attempt - 1)
    if growth == math.huge then nominal = MAXD else nominal = math.min(MAXD, BASE * growth) end
  end
  if JIT == 0 or nominal == 0 then return nominal end
  local lo, hi = 1.0 - JIT, 1.0 + JIT
  local jittered = nominal * (lo + (hi - lo) * first_draw(seed))
  return math.min(math.max(jittered, 0.0), MAXD * (1.0 + JIT))
end

-- Queue a PENDING job, ready or delayed; adds its q (and r) to the field list `set`.
local function enqueue(id, set, prio, sched, updated)
  qseq = qseq + 1
  local n = #set
  set[n + 1] = "q"
  set[n + 2] = fmt(qseq)
  if sched ~= "" and tonumber(sched) > updated then
    call("ZADD", DELAYED, sched, id)
  else
    call("ZADD", READY, fmt((10 - prio) * TWO40 + qseq), id)
    set[n + 3] = "r"
    set[n + 4] = fmt(ops)
  end
end

local function promote(at_s)
  local due = call("ZRANGEBYSCORE", DELAYED, "-inf", at_s, "WITHSCORES")
  local out = {}
  if #due == 0 then return out end
  local items = {}
  for k = 1, #due, 2 do
    local h = call("HMGET", jk(due[k]), "q", "priority")
    items[#items + 1] = {due[k], tonumber(due[k + 1]), tonumber(h[1]), tonumber(h[2])}
  end
  table.sort(items, function(x, y)
    if x[2] ~= y[2] then return x[2] < y[2] end
    return x[3] < y[3]
  end)
  call("ZREMRANGEBYSCORE", DELAYED, "-inf", at_s)
  for _, it in ipairs(items) do
    qseq = qseq + 1
    call("ZADD", READY, fmt((10 - it[4]) * TWO40 + qseq), it[1])
    call("HSET", jk(it[1]), "q", fmt(qseq), "r", fmt(ops))
    out[#out + 1] = it[1]
  end
  return out
end

local function fenced(e)
  if tonumber(e) < tonumber(epoch) then return true end
  epoch = e
  return false
end

local function close(atts, at, outcome, err)
  local cur = atts[#atts]
  cur[4] = at
  cur[5] = err
  cur[6] = outcome
  return cmsgpack.pack(atts)
end

-- RUNNING -> `status`, the open attempt closed (`packed`), the lease gone.
local function finish(id, seqs, status, packed, at_s, sched)
  if sched then
    call("HSET", jk(id), "status", status, "attempts", packed, "updated_at", at_s, "lease_expires_at", "",
      "scheduled_at", sched)
  else
    call("HSET", jk(id), "status", status, "attempts", packed, "updated_at", at_s, "lease_expires_at", "")
  end
  call("ZREM", RUNNING, id)
  st_add(status, seqs, id)
end

-- The machine's _fail: RETRYING with a jittered backoff, or DEAD when the budget is spent.
local function fail(id, atts, seqs, max_retries, at_requeue, at, at_s, outcome, err)
  local n = #atts
  local budget = n - at_requeue
  local packed = close(atts, at, outcome, err)
  if max_retries + 1 - budget <= 0 then
    finish(id, seqs, "DEAD", packed, at_s, false)
    return "DEAD"
  end
  local due = fmt(at + retry_delay(budget, id .. ":" .. n))
  finish(id, seqs, "RETRYING", packed, at_s, due)
  call("ZADD", RETRYING, due, id)
  return "RETRYING"
end

local function left_best(mark)
  local top = call("ZRANGE", READY, 0, 0)
  if #top == 0 then return 0 end
  local h = call("HMGET", jk(top[1]), "r", "priority")
  if tonumber(h[1]) <= mark then return tonumber(h[2]) end
  -- r grows with q, so each priority band's first job is its earliest ready one.
  for p = 10, 1, -1 do
    local lo = (10 - p) * TWO40
    local first = call("ZRANGEBYSCORE", READY, fmt(lo), "(" .. fmt(lo + TWO40), "LIMIT", 0, 1)
    if #first > 0 and tonumber(call("HGET", jk(first[1]), "r")) <= mark then return p end
  end
  return 0
end

local function by_seq(ids)
  local items = {}
  for k, id in ipairs(ids) do items[k] = {id, tonumber(call("HGET", jk(id), "seq"))} end
  table.sort(items, function(x, y) return x[2] < y[2] end)
  return items
end

local function dlq_ids()
  local all, n = arg(), tonumber(arg())
  local given = {}
  for k = 1, n do given[k] = arg() end
  if all == "1" then return call("ZRANGE", DEAD, 0, -1) end
  local ids, seen = {}, {}
  for _, id in ipairs(given) do
    if not seen[id] and call("ZSCORE", DEAD, id) then
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
  return ids
end

-- A worker alive after `at` with the most free lane credits (ties: the one heard from longest ago).
local function lane_pick(at)
  local alive = call("ZRANGEBYSCORE", LANE_ALIVE, "(" .. at, "+inf")
  if #alive == 0 then return nil end
  local free = call("HMGET", LANE_FREE, unpack(alive))
  local best, most = nil, 0
  for k, w in ipairs(alive) do
    local n = tonumber(free[k]) or 0
    if n > most then best, most = w, n end
  end
  return best
end

-- A new job written RUNNING at once (a fast lane's dispatch): its fields `set`, then the open
-- first attempt of `worker` from `at` and its lease; it never enters the ready and PENDING sets.
local function write_running(id, set, worker, at, lease_until)
  local k = #set
  set[k + 1], set[k + 2], set[k + 3] = "status", "RUNNING", "attempts"
  set[k + 4] = cmsgpack.pack({{1, worker, tonumber(at), false, false, "RUNNING"}})
  set[k + 5], set[k + 6], set[k + 7], set[k + 8] = "updated_at", at, "lease_expires_at", lease_until
  call("HSET", jk(id), unpack(set))
  call("ZADD", RUNNING, lease_until, id)
end

-- The priority of the ready queue's head (`top`, a ZRANGE WITHSCORES of one), 0 if empty.
local function best_of(top)
  if #top == 0 then return 0 end
  return 10 - math.floor(tonumber(top[2]) / TWO40)
end

local OPS = {}

function OPS.noop() return 0 end

function OPS.submit()
  local id, jtype, idem, prio, sched, updated = arg(), arg(), arg(), tonumber(arg()), arg(), tonumber(arg())
  local n = tonumber(arg())
  local set = {}
  for k = 1, n do set[k] = arg() end
  local mode = arg()
  local lane, direct, le, lat, llease, lworker = mode == "1", mode == "2"
  if lane then le, lat, llease, lworker = arg(), arg(), arg(), arg() end
  if direct then lat = arg() end
  local seqs = fmt(seq + 1)
  if call("ZADD", ORDER, "NX", seqs, id) == 0 then return {0, row(id)} end
  if idem ~= "" then
    local known = call("HGET", IDEM, idem)
    if known then
      call("ZREM", ORDER, id)
      return {0, row(known)}
    end
    call("HSET", IDEM, idem, id)
  end
  seq = seq + 1
  set[n + 1] = "seq"
  set[n + 2] = seqs
  call("ZADD", tk(jtype), seqs, id)
  -- The fast lane, under the leader's token: a ready job that nothing ready is as urgent as would
  -- head the ready queue (0 fenced, 1 queued, 2 dispatched); it is written RUNNING at once,
  -- never entering the ready and PENDING sets.
  local code = nil
  if lane then
    if fenced(le) then
      code = 0
    elseif sched ~= "" and tonumber(sched) > updated then
      code = 1
    else
      local top = call("ZRANGE", READY, 0, 0, "WITHSCORES")
      if #top > 0 and tonumber(top[2]) < (11 - prio) * TWO40 then
        code = 1
      else
        write_running(id, set, lworker, lat, llease)
        return {1, 2, epoch, best_of(top)}
      end
    end
  end
  local due = sched == "" or tonumber(sched) <= updated
  if direct and due then
    -- The direct lane: a producer's submit that heads the ready queue goes to a live node's
    -- lane list with a free credit, written RUNNING for that node's worker.
    local top = call("ZRANGE", READY, 0, 0, "WITHSCORES")
    local w = nil
    if #top == 0 or tonumber(top[2]) >= (11 - prio) * TWO40 then w = lane_pick(lat) end
    if w then
      local lease_until = fmt(tonumber(lat) + tonumber(call("HGET", LANE_LEASE, w)))
      write_running(id, set, w, lat, lease_until)
      call("HINCRBY", LANE_FREE, w, -1)
      -- set[6] is the payload and set[12] the timeout: the encoder's fixed field order
      call("RPUSH", P .. "lane:" .. w, cmsgpack.pack({id, jtype, set[6], set[12], prio}))
      return {1, 2, epoch, best_of(top), w, lease_until}
    end
    code = 1
  end
  enqueue(id, set, prio, sched, updated)
  call("HSET", jk(id), unpack(set))
  call("ZADD", P .. "st:PENDING", seqs, id)
  if direct then
    if due and call("LLEN", NUDGE) == 0 then call("RPUSH", NUDGE, "1") end
    return {1, 1, epoch}
  end
  if not lane then return {1} end
  return {1, code, epoch}
end

-- The direct lane's credits: a node registers its worker with free slots, a lease and a time
-- it is alive until; it counts the lane jobs it finished (freed), which turn into credits once.
function OPS.lane_open()
  local w, free, lease, alive = arg(), arg(), arg(), arg()
  call("HSET", LANE_FREE, w, free)
  call("HSET", LANE_SEEN, w, "0")
  call("HSET", LANE_LEASE, w, lease)
  call("ZADD", LANE_ALIVE, alive, w)
  call("DEL", P .. "lane:" .. w)
  return 1
end

function OPS.lane_credit()
  local w, freed, slots, alive = arg(), tonumber(arg()), tonumber(arg()), arg()
  local h = call("HMGET", LANE_FREE, w)
  local seen = tonumber(call("HGET", LANE_SEEN, w))
  if not h[1] or not seen then return 0 end
  if freed > seen then
    call("HSET", LANE_FREE, w, math.min(slots, tonumber(h[1]) + freed - seen))
    call("HSET", LANE_SEEN, w, fmt(freed))
  end
  call("ZADD", LANE_ALIVE, alive, w)
  return 1
end

function OPS.lane_close()
  local w = arg()
  call("HDEL", LANE_FREE, w)
  call("HDEL", LANE_SEEN, w)
  call("HDEL", LANE_LEASE, w)
  call("ZREM", LANE_ALIVE, w)
  return 1
end

function OPS.get()
  local r = row(arg())
  if not r[1] then return false end
  return r
end

local function page(ids, limit, offset)
  local out = {#ids}
  for k = offset + 1, math.min(#ids, offset + limit) do out[#out + 1] = row(ids[k]) end
  return out
end

function OPS.list()
  local status, has_type, jtype, limit, offset = arg(), arg() == "1", arg(), tonumber(arg()), tonumber(arg())
  if status == "RUNNING" then
    local matched = {}
    for _, it in ipairs(by_seq(call("ZRANGE", RUNNING, 0, -1))) do
      if not has_type or call("HGET", jk(it[1]), "type") == jtype then matched[#matched + 1] = it[1] end
    end
    return page(matched, limit, offset)
  end
  if not has_type or status == "" then
    local key = ORDER
    if has_type then key = tk(jtype) elseif status ~= "" then key = P .. "st:" .. status end
    local out = {call("ZCARD", key)}
    for _, id in ipairs(call("ZRANGE", key, fmt(offset), fmt(offset + limit - 1))) do
      out[#out + 1] = row(id)
    end
    return out
  end
  local scan, field, want = P .. "st:" .. status, "type", jtype
  if call("ZCARD", tk(jtype)) < call("ZCARD", scan) then scan, field, want = tk(jtype), "status", status end
  local matched = {}
  for _, id in ipairs(call("ZRANGE", scan, 0, -1)) do
    if call("HGET", jk(id), field) == want then matched[#matched + 1] = id end
  end
  return page(matched, limit, offset)
end

function OPS.cancel()
  local id, valid, at_s, reason = arg(), arg(), arg(), arg()
  local key = jk(id)
  local h = call("HMGET", key, "status", "attempts", "seq")
  local status = h[1]
  if not status then return {"nojob"} end
  if valid ~= "1" then return {"bad"} end
  if status ~= "PENDING" and status ~= "RUNNING" and status ~= "RETRYING" then return {"status", status} end
  if status == "PENDING" then
    call("ZREM", READY, id)
    call("ZREM", DELAYED, id)
    call("HSET", key, "status", "CANCELLED", "updated_at", at_s)
  elseif status == "RETRYING" then
    call("ZREM", RETRYING, id)
    call("HSET", key, "status", "CANCELLED", "updated_at", at_s)
  else
    local err = "cancelled"
    if reason ~= "" then err = "cancelled: " .. reason end
    local packed = close(cmsgpack.unpack(h[2]), tonumber(at_s), "CANCELLED", err)
    call("HSET", key, "status", "CANCELLED", "updated_at", at_s, "attempts", packed, "lease_expires_at", "")
    call("ZREM", RUNNING, id)
  end
  st_rem(status, id)
  st_add("CANCELLED", h[3], id)
  return {"ok", row(id)}
end

function OPS.ready()
  local at_s, limit = arg(), tonumber(arg())
  promote(at_s)
  local out = {ops}
  for _, id in ipairs(call("ZRANGE", READY, 0, limit - 1)) do
    local h = call("HMGET", jk(id), "priority", "type")
    out[#out + 1] = {id, tonumber(h[1]), h[2]}
  end
  return out
end

function OPS.dispatch()
  local e, at_s, lease_s, mark = arg(), arg(), arg(), tonumber(arg())
  local n = tonumber(arg())
  local assign = {}
  for k = 1, n do assign[k] = {arg(), arg()} end
  if fenced(e) then return {0, epoch} end
  local at = tonumber(at_s)
  local out = {1, epoch, 0}
  for _, pair in ipairs(assign) do
    local id, worker = pair[1], pair[2]
    local r = row(id)
    if r[9] == "PENDING" then
      if call("ZREM", READY, id) == 1 then
        local atts = cmsgpack.unpack(r[10])
        atts[#atts + 1] = {#atts + 1, worker, at, false, false, "RUNNING"}
        r[9], r[10], r[12], r[13] = "RUNNING", cmsgpack.pack(atts), at_s, lease_s
        call("HSET", jk(id), "status", "RUNNING", "attempts", r[10], "updated_at", at_s, "lease_expires_at",
          lease_s)
        call("ZADD", RUNNING, lease_s, id)
        call("ZREM", P .. "st:PENDING", id)
        out[#out + 1] = r
      end
    elseif r[9] == "RUNNING" then
      local atts = cmsgpack.unpack(r[10])
      local cur = atts[#atts]
      if cur[2] == worker and cur[3] == at then out[#out + 1] = r end
    end
  end
  out[3] = left_best(mark)
  return out
end

function OPS.renew()
  local e, at_s, lease_s, worker = arg(), arg(), arg(), arg()
  local n = tonumber(arg())
  local held = {}
  for k = 1, n do held[k] = {arg(), tonumber(arg())} end
  if fenced(e) then return {0, epoch} end
  local lease = tonumber(lease_s)
  local flags = {}
  for k, pair in ipairs(held) do
    local id = pair[1]
    local key = jk(id)
    local h = call("HMGET", key, "status", "attempts", "lease_expires_at")
    flags[k] = 0
    if h[1] == "RUNNING" then
      local atts = cmsgpack.unpack(h[2])
      local cur = atts[#atts]
      if cur[1] == pair[2] and cur[2] == worker then
        local lease_until = lease_s
        if lease < (tonumber(h[3]) or 0) then lease_until = h[3] end
        call("HSET", key, "lease_expires_at", lease_until, "updated_at", at_s)
        call("ZADD", RUNNING, lease_until, id)
        flags[k] = 1
      end
    end
  end
  return {1, epoch, flags}
end

function OPS.report()
  local id, num, worker, ok, at_s = arg(), tonumber(arg()), arg(), arg() == "1", arg()
  local error_valid, err, retryable = arg(), arg(), arg()
  local h = call("HMGET", jk(id), "status", "attempts", "seq", "max_retries", "attempts_at_requeue")
  local status = h[1]
  if not status then return {"unknown"} end
  local atts = cmsgpack.unpack(h[2])
  local cur = atts[#atts]
  if status ~= "RUNNING" or cur[1] ~= num or cur[2] ~= worker then
    local past = atts[num]
    local want = "FAILED"
    if ok then want = "SUCCESS" end
    if past and past[2] == worker and past[6] == want then return {"dup", status} end
    return {"lost", status}
  end
  local at = tonumber(at_s)
  if ok then
    finish(id, h[3], "SUCCESS", close(atts, at, "SUCCESS", false), at_s, false)
    return {"ok", "SUCCESS"}
  end
  if error_valid ~= "1" then return {"err"} end
  if retryable ~= "1" then
    finish(id, h[3], "FAILED", close(atts, at, "FAILED", err), at_s, false)
    return {"ok", "FAILED"}
  end
  return {"ok", fail(id, atts, h[3], tonumber(h[4]), tonumber(h[5]), at, at_s, "FAILED", err)}
end

function OPS.maintain()
  local e, at_s = arg(), arg()
  if fenced(e) then return {0, epoch} end
  local at = tonumber(at_s)
  local expired = {}
  for _, it in ipairs(by_seq(call("ZRANGEBYSCORE", RUNNING, "-inf", "(" .. at_s))) do
    local h = call("HMGET", jk(it[1]), "attempts", "max_retries", "attempts_at_requeue")
    fail(it[1], cmsgpack.unpack(h[1]), fmt(it[2]), tonumber(h[2]), tonumber(h[3]), at, at_s,
      "LEASE_EXPIRED", "lease expired")
    expired[#expired + 1] = it[1]
  end
  local retried = {}
  for _, it in ipairs(by_seq(call("ZRANGEBYSCORE", RETRYING, "-inf", at_s))) do
    local id = it[1]
    local h = call("HMGET", jk(id), "priority", "scheduled_at")
    local set = {"status", "PENDING", "updated_at", at_s}
    enqueue(id, set, tonumber(h[1]), h[2] or "", at)
    call("HSET", jk(id), unpack(set))
    call("ZREM", RETRYING, id)
    st_rem("RETRYING", id)
    st_add("PENDING", fmt(it[2]), id)
    retried[#retried + 1] = id
  end
  return {1, epoch, expired, retried, promote(at_s)}
end

function OPS.dlq_list()
  local limit, offset = tonumber(arg()), tonumber(arg())
  local out = {call("ZCARD", DEAD)}
  for _, id in ipairs(call("ZRANGE", DEAD, fmt(offset), fmt(offset + limit - 1))) do
    out[#out + 1] = row(id)
  end
  return out
end

function OPS.dlq_requeue()
  local at_s = arg()
  local at = tonumber(at_s)
  local ids = dlq_ids()
  for _, id in ipairs(ids) do
    local h = call("HMGET", jk(id), "attempts", "requeue_count", "priority", "seq")
    local set = {"status", "PENDING", "updated_at", at_s, "scheduled_at", "",
      "attempts_at_requeue", fmt(#cmsgpack.unpack(h[1])), "requeue_count", fmt(tonumber(h[2]) + 1)}
    enqueue(id, set, tonumber(h[3]), "", at)
    call("HSET", jk(id), unpack(set))
    st_rem("DEAD", id)
    st_add("PENDING", h[4], id)
  end
  return ids
end

function OPS.dlq_purge()
  local ids = dlq_ids()
  for _, id in ipairs(ids) do
    local key = jk(id)
    local h = call("HMGET", key, "type", "idempotency_key")
    call("DEL", key)
    call("ZREM", DEAD, id)
    call("ZREM", ORDER, id)
    call("ZREM", tk(h[1]), id)
    if h[2] and call("HGET", IDEM, h[2]) == id then call("HDEL", IDEM, h[2]) end
  end
  return ids
end

function OPS.stats()
  local out = {}
  for k, s in ipairs(STATUSES) do
    if s == "RUNNING" then out[k] = call("ZCARD", RUNNING) else out[k] = call("ZCARD", P .. "st:" .. s) end
  end
  out[8] = call("ZCARD", READY)
  out[9] = call("ZCARD", DELAYED)
  out[10] = out[2]
  out[11] = call("ZCARD", RETRYING)
  out[12] = out[6]
  out[13] = call("ZCARD", ORDER)
  out[14] = epoch
  return out
end

-- The direct lane's bookkeeping is not a job command: it leaves `ops` (and so `mark`) alone.
local UNCOUNTED = {lane_open = true, lane_credit = true, lane_close = true}

local function apply_all(ncmd, results)
  for c = 1, ncmd do
    local op = arg()
    if not UNCOUNTED[op] then ops = ops + 1 end
    results[c] = OPS[op]()
  end
end

-- One chunk: KEYS[1] is the prefix; ARGV the retry policy, the number of commands, then each
-- command's op and arguments. The counters are read once and written back once.
local function run(keys, args)
  call, P, A, pos = redis.call, keys[1] .. ":", args, 0
  ORDER, READY, DELAYED = P .. "order", P .. "ready", P .. "delayed"
  RETRYING, RUNNING, IDEM, META = P .. "retrying", P .. "running", P .. "idem", P .. "meta"
  DEAD = P .. "st:DEAD"
  LANE_FREE, LANE_SEEN, LANE_LEASE = P .. "lane_free", P .. "lane_seen", P .. "lane_lease"
  LANE_ALIVE, NUDGE = P .. "lane_alive", P .. "nudge"
  FIXED = arg() == "fixed"
  BASE, MAXD, MULT, JIT = tonumber(arg()), tonumber(arg()), tonumber(arg()), tonumber(arg())
  local ncmd = tonumber(arg())
  local meta = call("HMGET", META, "ops", "seq", "qseq", "epoch")
  ops, seq, qseq = tonumber(meta[1]) or 0, tonumber(meta[2]) or 0, tonumber(meta[3]) or 0
  epoch = meta[4] or "0"
  local results = {}
  local done, failure = pcall(apply_all, ncmd, results)
  call("HSET", META, "ops", fmt(ops), "seq", fmt(seq), "qseq", fmt(qseq), "epoch", epoch)
  A = nil
  if not done then
    if type(failure) == "table" then failure = failure.err end
    return redis.error_reply("troupe job script failed: " .. tostring(failure))
  end
  return results
end
"""

LUA: Final = BODY + "return run(KEYS, ARGV)\n"
"""The body as a script for ``EVALSHA`` (its functions are built anew by every call)."""


def library(name: str) -> str:
    """The body as a Redis Functions library ``name`` with one function ``name`` (``FCALL``):
    loaded once, its functions are built once, not by every call."""
    return f"#!lua name={name}\n{BODY}redis.register_function('{name}', run)\n"


NAME: Final = "troupe_jobs_" + hashlib.sha1(BODY.encode()).hexdigest()[:12]
"""The library's name: one per version of the body, so nodes of two versions can share a server."""
