#!/usr/bin/python3
# Fault-injection soak, driven by tests/soak-faults.t: a seeded mixed
# workload on one served volume (random writes, zeroes and trims through
# libnbd; snapshots taken while writing; full and incremental send |
# receive into a second store; copies to a second region; deletes and gc)
# with kill -9 of nbdkit, of `xsnap snapshot create`, of `xsnap send` and
# of `xsnap receive` at random moments.  A model of what was written
# checks, after every step and at the end:
#   - after each restart the volume holds every flushed write, and each
#     4 KiB unit written but not flushed holds one of the states its
#     writes went through (old or new content, never anything else);
#   - `xsnap diff --live` is either untrusted or trusted and covering
#     every block written since its base snapshot;
#   - a snapshot whose creation was killed is absent or complete; every
#     snapshot in both stores and both regions verifies and reads back
#     byte-identical to the model at its point in time.
# The order of steps and the data come from the seed; the moments of the
# kills depend on timing, and every outcome they can produce is accepted
# only if it is one the model allows.
import fcntl, hashlib, json, multiprocessing, os, random, signal, struct, subprocess
import sys, threading, time
import nbd

XSNAP, PLUGIN, TMP, SEED, STEPS = sys.argv[1:6]
SEED, STEPS = int(SEED), int(STEPS)
NBDKIT = json.loads(os.environ.get("XSNAP_SOAK_NBDKIT", '["nbdkit"]'))
STORE_A, STORE_B = TMP + "/store", TMP + "/store2"
SIZE = 32 << 20
BS = 65536                        # the volume's block size
U = 4096                          # unit of the model's old-or-new check
NBLOCKS = SIZE // BS
WRITER_LO = SIZE - (4 << 20)      # the concurrent writer's blocks
rng = random.Random(SEED)
count = failed = 0
step_no, step_kind = 0, "setup"


class Failed(Exception):
    pass


def out(line):
    print(line, flush=True)


def diag(msg):
    for line in str(msg).splitlines():
        out("# " + line)


def ok(cond, desc):
    global count, failed
    count += 1
    out(("ok %d - %s" if cond else "not ok %d - %s") % (count, desc))
    if not cond:
        failed += 1
        diag("failing step %d (%s); replay with XSNAP_SOAK_SEED=%d"
             % (step_no, step_kind, SEED))
        raise Failed(desc)


def digest(data):
    return hashlib.blake2b(data, digest_size=16).digest()


def block_hashes(data):
    return [digest(data[i:i + BS]) for i in range(0, len(data), BS)]


# ---- the tool and the servers ------------------------------------------

def xs(*args, store=STORE_A, check=True):
    """Run xsnap --json; return (status, parsed output or None, stderr)."""
    p = subprocess.run([XSNAP, "--store", store, "--json"] + list(args),
                       capture_output=True, text=True)
    if check and p.returncode != 0:
        ok(False, "xsnap %s: %s" % (" ".join(args), p.stderr.strip()))
    try:
        doc = json.loads(p.stdout) if p.stdout.strip() else None
    except ValueError:
        doc = None
    return p.returncode, doc, p.stderr


def snapshots(store=STORE_A, region="local"):
    return xs("--region", region, "snapshot", "list", store=store)[1]["snapshots"]


class Server:
    count = 0

    def __init__(self, store=STORE_A, region="local"):
        Server.count += 1
        name = "%s/srv%d" % (TMP, Server.count)
        self.sock, pidfile = name + ".sock", name + ".pid"
        self.log = open(name + ".log", "w")
        self.proc = subprocess.Popen(
            NBDKIT + ["-f", "-U", self.sock, "-P", pidfile, "--log=stderr",
                      PLUGIN, "store=" + store, "region=" + region],
            stdout=self.log, stderr=self.log)
        for _ in range(600):
            if os.path.exists(pidfile) and os.path.exists(self.sock):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        ok(False, "nbdkit started (log %s.log)" % name)

    def uri(self, export):
        return "nbd+unix:///%s?socket=%s" % (export, self.sock)

    def kill9(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.kill9()
                ok(False, "nbdkit stopped within 60 s of SIGTERM")


def read_export(uri):
    """The bytes of an export, read by nbdcopy."""
    p = subprocess.run(["nbdcopy", uri, "-"], capture_output=True)
    if p.returncode != 0 or len(p.stdout) != SIZE:
        ok(False, "nbdcopy %s: %s" % (uri, p.stderr.decode().strip()))
    return p.stdout


# ---- the model ---------------------------------------------------------

class Model:
    """The volume's content as written (img), and for each 4 KiB unit
    written since the last flush the digests of every state it went
    through (cand), any of which a kill -9 may leave on disk."""

    def __init__(self):
        self.img = bytearray(SIZE)
        self.cand = {}
        self.seq = 0               # count of acknowledged driver requests
        self.touched = []          # (seq, blocks) of acknowledged requests

    def unit(self, u):
        return digest(self.img[u * U:(u + 1) * U])

    def apply(self, offset, data):
        units = range(offset // U, (offset + len(data) - 1) // U + 1)
        for u in units:
            if u not in self.cand:
                self.cand[u] = [self.unit(u)]
        self.img[offset:offset + len(data)] = data
        for u in units:
            self.cand[u].append(self.unit(u))

    def acknowledged(self, offset, length):
        self.seq += 1
        self.touched.append((self.seq, set(range(offset // BS,
                                                 (offset + length - 1) // BS + 1))))

    def flushed(self, lo=0, hi=SIZE):
        for u in [u for u in self.cand if lo <= u * U < hi]:
            del self.cand[u]

    def touched_since(self, seq):
        blocks = set()
        for s, b in self.touched:
            if s > seq:
                blocks |= b
        return blocks

    def resolve(self, data):
        """After a restart: every unit must hold its durable state or one
        of the states its unflushed writes went through; adopt what is
        there.  Returns the units that hold anything else."""
        bad = []
        for u in range(SIZE // U):
            got = digest(data[u * U:(u + 1) * U])
            if got not in self.cand.get(u, [self.unit(u)]):
                bad.append(u)
        self.img[:] = data
        self.cand = {}
        return bad


model = Model()
expected = {}    # snapshot id -> {"name", "blocks": hashes or None, "why", ...}
attempts = []    # names of snapshots whose creation may or may not have happened


# ---- the driver's connection --------------------------------------------

class Driver:
    def __init__(self):
        self.server = Server()
        self.h = None

    def connect(self):
        if self.h is None:
            self.h = nbd.NBD()
            self.h.connect_uri(self.server.uri("vol"))

    def disconnect(self):
        if self.h is not None:
            try:
                self.h.shutdown()
            except nbd.Error:
                pass
            self.h = None

    def random_op(self):
        """One request in the driver's part of the volume; the model
        takes it as maybe-applied before it is sent."""
        length = rng.choice([1, 511, 4096, BS, BS + 1, 3 * BS,
                             rng.randint(1, 1 << 20)])
        offset = rng.randint(0, WRITER_LO - length)
        kind = rng.choice(["write"] * 5 + ["zero", "trim"])
        data = rng.randbytes(length) if kind == "write" else bytes(length)
        model.apply(offset, data)
        if kind == "write":
            self.h.pwrite(data, offset)
        elif kind == "zero":
            self.h.zero(length, offset)
        else:
            self.h.trim(length, offset)    # a head punches a hole: reads zero
        model.acknowledged(offset, length)

    def flush(self):
        self.h.flush()
        model.flushed(0, WRITER_LO)

    def burst(self, n):
        self.connect()
        for _ in range(n):
            self.random_op()
            if rng.random() < 0.15:
                self.flush()

    def restart_after_kill(self):
        self.h = None
        self.server = Server()
        self.connect()
        data = read_export(self.server.uri("vol"))
        bad = model.resolve(data)
        ok(not bad, "step %d: after the restart every flushed write is there "
           "and every unflushed unit is old or new%s"
           % (step_no, "" if not bad else " (units %s...)" % bad[:8]))
        settle()
        check_live_diff()


driver = None


# ---- snapshots ----------------------------------------------------------

def settle():
    """Wait until no snapshot of the volume is pending (sealing goes on in
    the owner), then check every attempted snapshot: absent, or complete
    and equal to the model at its point in time."""
    for _ in range(1200):
        if not any(s["status"] == "pending" for s in snapshots()):
            break
        time.sleep(0.05)
    left = [s["name"] for s in snapshots() if s["status"] == "pending"]
    ok(not left, "step %d: no snapshot stays pending (%s)" % (step_no, left))
    present = {s["name"]: s for s in snapshots() if s["volume"] == "vol"}
    for name, why in attempts:
        s = present.get(name)
        if s is None:
            diag("snapshot %s (%s) does not exist" % (name, why))
            continue
        check_snapshot(s["id"], name, driver.server.uri("vol@" + name))
    attempts.clear()


def check_snapshot(sid, name, uri):
    e = expected[name]
    data = read_export(uri)
    got = block_hashes(data)
    if e.get("writer"):
        w = e["writer"]
        point = Writer.point(data, w["run"])
        good = (w["k_lo"] <= point <= w["k_hi"]
                and got[:WRITER_LO // BS] == e["lower"]
                and got[WRITER_LO // BS:] == block_hashes(
                    Writer.region_after(point, w["base"], w["run"])))
        ok(good, "step %d: %s (taken while a writer ran) equals the model, the "
           "writer's part at its write %d within [%d, %d]"
           % (step_no, name, point, w["k_lo"], w["k_hi"]))
        e["blocks"] = got
        del e["writer"], e["lower"]
    else:
        ok(got == e["blocks"], "step %d: %s (%s) equals the model at its point "
           "in time" % (step_no, name, e["why"]))
    e["id"] = sid
    expected[sid] = e


def take_snapshot(mode, kill_cli):
    """mode: 'attached' (the owner seals in the background while the
    driver goes on writing), 'wait', or 'detached' (a detached sealer
    seals it; the driver's next connection takes the volume over, the
    snapshot with it).  kill_cli: kill -9 the tool after a random delay
    (a detached sealer it started goes on)."""
    name = "s%d" % step_no
    if mode == "detached":
        driver.disconnect()
    else:
        driver.connect()
    expected[name] = {"name": name, "blocks": block_hashes(model.img),
                      "seq": model.seq, "why": mode + (", tool killed" if kill_cli else "")}
    args = [XSNAP, "--store", STORE_A, "-q", "snapshot", "create", "vol",
            "--name", name] + (["--wait"] if mode == "wait" else [])
    p = subprocess.Popen(args, stderr=subprocess.PIPE)
    if kill_cli:
        time.sleep(rng.uniform(0, 0.03))
        p.kill()
    p.wait()
    err = p.stderr.read().decode()
    if not kill_cli:
        ok(p.returncode == 0, "step %d: snapshot %s created (%s)%s"
           % (step_no, name, mode, err and ": " + err.strip()))
    else:
        diag("snapshot create %s killed: status %d" % (name, p.returncode))
    attempts.append((name, expected[name]["why"]))
    return name


# A second process writing whole blocks of the last 4 MiB while a snapshot
# is taken (libnbd's Python binding holds the GIL during calls).  Write k
# of run r puts (r, k) in every 16 bytes of block WRITER_LO/BS + (k-1) % 64.
class Writer:
    NB = (SIZE - WRITER_LO) // BS

    def __init__(self, uri, run):
        self.run = run
        self.started = multiprocessing.Value("q", 0, lock=False)
        self.done = multiprocessing.Value("q", 0, lock=False)
        self.stop_flag = multiprocessing.Value("b", 0, lock=False)
        self.proc = multiprocessing.Process(target=Writer.main, args=(
            uri, run, self.started, self.done, self.stop_flag))
        self.proc.start()

    @staticmethod
    def content(run, k):
        return struct.pack("<QQ", run, k) * (BS // 16)

    @staticmethod
    def main(uri, run, started, done, stop_flag):
        h = nbd.NBD()
        h.connect_uri(uri)
        k = 0
        while not stop_flag.value:
            k += 1
            started.value = k
            h.pwrite(Writer.content(run, k), WRITER_LO + (k - 1) % Writer.NB * BS)
            done.value = k
        h.flush()
        h.shutdown()

    def stop(self):
        self.stop_flag.value = 1
        self.proc.join()
        return self.proc.exitcode == 0

    @staticmethod
    def region_after(k, base, run):
        region = bytearray(base)
        for j in range(Writer.NB):
            last = k - (k - 1 - j) % Writer.NB if k > j else 0
            if last > 0:
                region[j * BS:(j + 1) * BS] = Writer.content(run, last)
        return region

    @staticmethod
    def point(data, run):
        point = 0
        for j in range(Writer.NB):
            off = WRITER_LO + j * BS
            r, k = struct.unpack_from("<QQ", data, off)
            if r == run and data[off:off + BS] == Writer.content(run, k):
                point = max(point, k)
        return point


def concurrent_snapshot(kill_cli):
    driver.connect()
    driver.flush()
    base = bytes(model.img[WRITER_LO:])
    w = Writer(driver.server.uri("vol"), step_no)
    while w.done.value < 10 and w.proc.is_alive():
        time.sleep(0.005)
    name = "s%d" % step_no
    expected[name] = {"name": name, "lower": block_hashes(model.img[:WRITER_LO]),
                      "seq": model.seq, "why": "writer running"}
    k_lo = w.done.value
    p = subprocess.Popen([XSNAP, "--store", STORE_A, "-q", "snapshot", "create",
                          "vol", "--name", name], stderr=subprocess.PIPE)
    if kill_cli:
        time.sleep(rng.uniform(0, 0.03))
        p.kill()
    p.wait()
    k_hi = w.started.value
    time.sleep(0.05)
    ok(w.stop(), "step %d: the concurrent writer ran without error" % step_no)
    if kill_cli:
        # The owner may take a request whose tool was killed later on.
        k_hi = w.started.value
    if not kill_cli:
        ok(p.returncode == 0, "step %d: snapshot %s created while writing %s"
           % (step_no, name, p.stderr.read().decode().strip()))
    expected[name]["writer"] = {"run": step_no, "base": base, "k_lo": k_lo,
                                "k_hi": k_hi}
    region = Writer.region_after(w.done.value, base, step_no)
    model.img[WRITER_LO:] = region      # flushed by the writer as it stopped
    attempts.append((name, "writer running"))


def check_live_diff():
    """diff --live is untrusted, or trusted and covers every block that
    differs from its base snapshot or was written since it."""
    status, d, err = xs("diff", "--live", "vol", check=False)
    if status == 3 or (d and d.get("trusted") is False):
        ok(status == 3 and d is not None and d["extents"] is None,
           "step %d: diff --live is untrusted (%s) and gives no extents"
           % (step_no, d and d.get("reason")))
        return
    ok(status == 0 and d is not None, "step %d: diff --live answers %s"
       % (step_no, err.strip()))
    listed = set()
    for e in d["extents"]:
        listed.update(range(e["first_block"], e["first_block"] + e["blocks"]))
    base = expected.get(d["since"]) if d["since"] else None
    if d["since"] and base is None:
        ok(False, "step %d: diff --live is relative to a snapshot the soak "
           "knows (%s)" % (step_no, d["since"]))
    base_blocks = base["blocks"] if base else block_hashes(bytes(SIZE))
    now = block_hashes(model.img)
    need = {b for b in range(NBLOCKS) if now[b] != base_blocks[b]}
    need |= model.touched_since(base["seq"] if base else 0)
    missing = sorted(need - listed)
    ok(not missing, "step %d: trusted diff --live (since %s) covers all %d "
       "blocks written since%s" % (step_no, d["since"] or "creation", len(need),
                                   "" if not missing else
                                   "; missing %s" % missing[:10]))


# ---- send | receive, copies, deletes, gc --------------------------------

def send_receive(kill):
    """Send a snapshot of A that B lacks, incremental from one B has when
    there is one; kill: None, 'send' or 'receive'."""
    in_b = {s["id"] for s in snapshots(STORE_B)}
    a = sorted((s for s in snapshots() if s["volume"] == "vol"
                and s["status"] == "available"), key=lambda s: s["created_ns"])
    todo = [s for s in a if s["id"] not in in_b]
    if not todo:
        diag("nothing to send")
        return
    snap = rng.choice(todo)
    bases = [s for s in a if s["id"] in in_b and s["created_ns"] < snap["created_ns"]]
    base = rng.choice(bases) if bases and rng.random() < 0.8 else None
    frm = ["--from", base["id"]] if base else []
    what = "%s %s%s" % ("incremental" if base else "full", snap["name"],
                        " from " + base["name"] if base else "")
    status = pipe(["send", snap["id"]] + frm, kill)
    if kill:
        diag("send %s with %s killed: %s" % (what, kill, status))
        pending = [p for p in xs("receive", "--token", store=STORE_B)[1]["pending"]
                   if p["snapshot_id"] == snap["id"]
                   and p.get("base_snapshot_id") == (base["id"] if base else None)]
        diag("%d pending receive(s) of it in store2" % len(pending))
        if pending and rng.random() < 0.7:
            token = pending[0]["token"]
            status = pipe(["send", snap["id"]] + frm + ["--resume", token], None)
            ok(status == (0, 0), "step %d: send --resume | receive completes "
               "the interrupted %s: %s" % (step_no, what, status))
    else:
        ok(status == (0, 0), "step %d: send | receive of %s: %s"
           % (step_no, what, status))


def pipe(send_args, kill):
    """send | receive through a relay here, which kills the sender or the
    receiver with kill -9 once a seeded number of the stream's bytes (by
    its dry run's size) have gone through."""
    size = xs(*send_args, "--dry-run")[1]["bytes"] if kill else 0
    # The sender's pipe holds up to 1 MiB (tools/transfer.c): a sender
    # is still running only while more than that is left to send.
    room = size - (2 << 20) if kill == "send" else size - 1
    cut = rng.randint(0, max(room, 0)) if kill else -1
    sender = subprocess.Popen([XSNAP, "--store", STORE_A] + send_args,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    receiver = subprocess.Popen([XSNAP, "--store", STORE_B, "-q", "receive"],
                                stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    errs = []
    threads = [threading.Thread(target=lambda p=p: errs.append(p.stderr.read()))
               for p in (sender, receiver)]
    for t in threads:
        t.start()
    moved = 0
    try:
        while True:
            want = 1 << 16 if cut < 0 else min(1 << 16, cut - moved)
            data = sender.stdout.read1(want) if want > 0 else b""
            if data:
                receiver.stdin.write(data)
                moved += len(data)
            if cut >= 0 and moved >= cut:
                receiver.stdin.flush()
                (sender if kill == "send" else receiver).kill()
                diag("%s killed after %d of %d bytes" % (kill, moved, size))
                break
            if not data:
                break
    except BrokenPipeError:
        pass
    try:
        receiver.stdin.close()
    except BrokenPipeError:
        pass
    # Drain what the sender still writes (it fails on its own once the
    # receiver is gone).
    sender.stdout.read()
    status = (sender.wait(), receiver.wait())
    for t in threads:
        t.join()
    if status != (0, 0) and not kill:
        diag("send | receive: %s" % b" ".join(errs).decode().strip())
    return status


def copy_to_region():
    copied = {s["name"] for s in snapshots(region="r2")}
    todo = [s for s in snapshots() if s["volume"] == "vol"
            and s["status"] == "available" and "copy_local_" + s["name"] not in copied]
    if not todo:
        return
    s = rng.choice(todo)
    status, doc, err = xs("copy", s["id"], "--to-region", "r2", check=False)
    ok(status == 0, "step %d: copy of %s to region r2 %s"
       % (step_no, s["name"], err.strip()))
    expected[doc["snapshot"]["id"]] = dict(expected[s["id"]],
                                           name=doc["snapshot"]["name"])


def delete_one():
    stores = [(STORE_A, "local"), (STORE_A, "r2"), (STORE_B, "local")]
    store, region = rng.choice(stores)
    snaps = sorted(snapshots(store, region), key=lambda s: s["created_ns"])
    if len(snaps) < 2:
        return
    s = rng.choice(snaps[:-1])
    xs("--region", region, "snapshot", "delete", s["id"], store=store)
    diag("deleted %s in %s/%s" % (s["name"], os.path.basename(store), region))


def gc_all():
    for store, region in [(STORE_A, "local"), (STORE_A, "r2"), (STORE_B, "local")]:
        status, doc, err = xs("--region", region, "gc", store=store, check=False)
        ok(status == 0, "step %d: gc of %s/%s %s"
           % (step_no, os.path.basename(store), region, err.strip()))


# ---- the steps ----------------------------------------------------------

def kill_server_during_writes():
    # From a fresh snapshot on, most writes reach blocks its map has not
    # marked yet, which a map wrongly trusted after the kill would miss.
    if rng.random() < 0.5:
        take_snapshot("wait", False)
        settle()
    driver.connect()
    t = threading.Timer(rng.uniform(0.005, 0.15), driver.server.kill9)
    t.start()
    try:
        for _ in range(100000):
            driver.random_op()
            if rng.random() < 0.15:
                driver.flush()
    except nbd.Error:
        pass
    t.join()
    driver.server.kill9()
    driver.restart_after_kill()


def kill_server_while_sealing():
    name = take_snapshot("attached", False)
    t = threading.Timer(rng.uniform(0, 0.1), driver.server.kill9)
    t.start()
    try:
        for _ in range(100000):
            driver.random_op()
    except nbd.Error:
        pass
    t.join()
    driver.server.kill9()
    diag("nbdkit killed while %s was sealing" % name)
    driver.restart_after_kill()


def kill_detached_sealer():
    """kill -9 of the detached sealer of a snapshot, at a random moment:
    the snapshot is complete, or pending for ever until the volume's next
    owner (the driver's connection) removes it."""
    lock = "%s/regions/local/volumes/%s/lock" % (
        STORE_A, xs("volume", "show", "vol")[1]["id"])
    name = take_snapshot("detached", False)
    time.sleep(rng.uniform(0, 0.05))
    with open(lock) as f:
        pid, _, role = f.read().partition(" ")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            held = False            # the sealer is done and gone
        except BlockingIOError:
            held = True
    if held and role.strip() == "sealer":
        os.kill(int(pid), signal.SIGKILL)
        diag("the sealer of %s (pid %s) killed" % (name, pid))
    driver.connect()
    settle()


def restart_clean():
    driver.connect()
    driver.flush()
    driver.disconnect()
    driver.server.stop()
    driver.restart_after_kill()


STEPS_BY_KIND = {
    "writes, nbdkit killed": kill_server_during_writes,
    "snapshot while writing": lambda: (take_snapshot("attached", False),
                                       driver.burst(30), settle()),
    "snapshot --wait": lambda: (take_snapshot("wait", False), settle()),
    "snapshot of a detached volume": lambda: (take_snapshot("detached", False),
                                              driver.connect(), settle()),
    # A request the tool sent before it was killed may still be taken
    # later, so nothing is written until it has settled.
    "snapshot, tool killed": lambda: (take_snapshot(rng.choice(["attached", "wait"]), True),
                                      settle()),
    "snapshot of a detached volume, tool killed":
        lambda: (take_snapshot("detached", True), driver.connect(), settle()),
    "snapshot of a detached volume, sealer killed": kill_detached_sealer,
    "snapshot, nbdkit killed while sealing": kill_server_while_sealing,
    "snapshot with a concurrent writer": lambda: (concurrent_snapshot(False), settle()),
    "snapshot with a concurrent writer, tool killed":
        lambda: (concurrent_snapshot(True), settle()),
    "send | receive": lambda: send_receive(None),
    "send | receive, sender killed": lambda: send_receive("send"),
    "send | receive, receiver killed": lambda: send_receive("receive"),
    "copy to region r2": copy_to_region,
    "delete a snapshot": delete_one,
    "gc": gc_all,
    "clean restart": restart_clean,
}


def schedule():
    """Every kind once in a seeded order (the short form), then random
    kinds for the rest of STEPS (the long form)."""
    kinds = list(STEPS_BY_KIND)
    # A few snapshots exist before anything is sent, copied or deleted.
    first = [k for k in kinds if k.startswith("snapshot")]
    rng.shuffle(first)
    first = first[:3]
    rest = [k for k in kinds if k not in first]
    rng.shuffle(rest)
    kinds = first + rest
    while len(kinds) < STEPS:
        kinds.append(rng.choice(list(STEPS_BY_KIND)))
    return kinds


def final_checks():
    """Every snapshot in both stores and both regions verifies and reads
    back equal to the model; the volume equals the model."""
    global step_kind
    step_kind = "final checks"
    driver.connect()
    driver.flush()
    driver.disconnect()
    driver.server.stop()
    gc_all()
    for store, region in [(STORE_A, "local"), (STORE_A, "r2"), (STORE_B, "local")]:
        where = "%s/%s" % (os.path.basename(store), region)
        server = Server(store, region)
        try:
            for s in snapshots(store, region):
                ok(s["status"] == "available", "%s: %s is available (%s)"
                   % (where, s["name"], s["status"]))
                status, doc, err = xs("--region", region, "verify", s["id"],
                                      store=store, check=False)
                ok(status == 0 and doc["ok"], "%s: %s verifies %s"
                   % (where, s["name"], err.strip()))
                e = expected.get(s["id"])
                ok(e is not None, "%s: %s is a snapshot the soak made" % (where, s["name"]))
                ok(block_hashes(read_export(server.uri(s["id"]))) == e["blocks"],
                   "%s: %s reads back equal to the model at its point in time"
                   % (where, s["name"]))
            if store == STORE_A and region == "local":
                ok(read_export(server.uri("vol")) == model.img,
                   "the volume equals the model of what was written")
        finally:
            server.stop()


def main():
    global driver, step_no, step_kind
    out("# seed %d, %d steps (replay with XSNAP_SOAK_SEED=%d)" % (SEED, STEPS, SEED))
    for store in (STORE_A, STORE_B):
        xs("init", store=store)
    xs("region", "add", "r2")
    xs("volume", "create", "vol", "--size", str(SIZE), "--block-size", str(BS))
    driver = Driver()
    t0 = time.time()
    try:
        for step_no, step_kind in enumerate(schedule(), 1):
            diag("step %d: %s" % (step_no, step_kind))
            driver.burst(rng.randint(5, 40))
            STEPS_BY_KIND[step_kind]()
        final_checks()
    except Failed:
        pass
    except Exception as e:
        ok(False, "step %d (%s) ran: %r" % (step_no, step_kind, e))
    finally:
        driver.server.kill9()
    diag("%.1f s" % (time.time() - t0))
    out("1..%d" % count)
    return 1 if failed else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed:
        out("1..%d" % count)
        sys.exit(1)
