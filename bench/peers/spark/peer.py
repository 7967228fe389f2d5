"""Spark Structured Streaming peer: Kafka -> append "|partition:offset" -> Kafka (or files).

Run through bench/peers/spark/run, which installs the runtime (./setup) and creates the output
topic. Reads --input from the earliest offsets (or from its checkpoint), appends the suffix
"|<partition>:<offset>" to each value (SQL expressions only: no Python UDF, so no Python worker
processes), and writes to --output (Kafka sink) or to --output-dir (file sink). Checkpointing is
always on (--checkpoint DIR, default a temp dir removed at the end).

With --expect N it stops after the micro-batches that read N records have completed (the
StreamingQueryListener's progress events, which Spark posts once a batch's output is written and
its commit log entry is durable) and prints one JSON summary line on stdout. --expect 0 runs until
killed (used by the kill test).

Delivery: the Kafka sink is at-least-once (Spark's Kafka producer is not transactional; a batch
that was running when the driver died is written again on restart). The file sink is exactly-once
for readers of its _spark_metadata log.
"""

import argparse
import json
import os
import resource
import shutil
import signal
import sys
import tempfile
import threading
import time


def log(msg):
    print(f"[spark-peer] {msg}", file=sys.stderr, flush=True)


def proc_cpu_seconds(pid):
    """utime + stime of a process from /proc/PID/stat (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_hwm_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", help="output topic (Kafka sink)")
    ap.add_argument("--app-id", required=True, help="Spark app name; also names the default checkpoint dir")
    ap.add_argument("--expect", type=int, default=0, help="stop after N records (0: run until killed)")
    ap.add_argument("--trigger-ms", type=int, default=100, help="processingTime trigger interval (0: back to back)")
    ap.add_argument("--sink", choices=["kafka", "files"], default="kafka")
    ap.add_argument("--output-dir", help="file sink directory (default: a temp dir, removed at the end)")
    ap.add_argument("--file-format", default="text", choices=["text", "json", "parquet"])
    ap.add_argument("--checkpoint", help="checkpointLocation (default: a temp dir, removed at the end)")
    ap.add_argument("--max-offsets-per-trigger", type=int, default=0, help="cap on records per micro-batch (0: none)")
    ap.add_argument("--master", default="local[*]")
    ap.add_argument("--driver-memory", default="1g")
    ap.add_argument("--timeout-s", type=float, default=600)
    ap.add_argument("--progress", action="store_true", help="log every micro-batch's progress to stderr")
    ap.add_argument("--conf", action="append", default=[], help="extra Spark conf key=value (repeatable)")
    ap.add_argument("--jars", default=os.environ.get("SPARK_PEER_JARS", ""), help="comma-separated connector jars")
    a = ap.parse_args()
    if a.sink == "kafka" and not a.output:
        ap.error("--output is required with --sink kafka")

    t_launch = time.monotonic()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQueryListener

    temp_dirs = []
    checkpoint = a.checkpoint
    if not checkpoint:
        checkpoint = tempfile.mkdtemp(prefix=f"bench-peers-spark-cp-{a.app_id}-")
        temp_dirs.append(checkpoint)
    out_dir = a.output_dir
    if a.sink == "files" and not out_dir:
        out_dir = tempfile.mkdtemp(prefix=f"bench-peers-spark-out-{a.app_id}-")
        temp_dirs.append(out_dir)

    b = (SparkSession.builder.master(a.master).appName(a.app_id)
         .config("spark.driver.memory", a.driver_memory)
         .config("spark.ui.enabled", "false")
         .config("spark.ui.showConsoleProgress", "false")
         # loopback only: never bind to or advertise another interface
         .config("spark.driver.host", "127.0.0.1")
         .config("spark.driver.bindAddress", "127.0.0.1")
         .config("spark.sql.shuffle.partitions", "2")
         .config("spark.sql.streaming.numRecentProgressUpdates", "10"))
    if a.jars:
        b = b.config("spark.jars", a.jars)
    for kv in a.conf:
        k, _, v = kv.partition("=")
        b = b.config(k, v)
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel(os.environ.get("PEER_LOG_LEVEL", "WARN").upper())
    jvm_pid = int(spark._jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getPid())
    log(f"Spark {spark.version} up in {time.monotonic() - t_launch:.1f} s (driver JVM pid {jvm_pid}); checkpoint {checkpoint}")

    state = {"records": 0, "batches": 0, "done_at": None, "first_at": None}
    done = threading.Event()
    ended = threading.Event()

    class Listener(StreamingQueryListener):
        def onQueryStarted(self, event):
            pass

        def onQueryProgress(self, event):
            p = event.progress
            n = p.numInputRows
            state["records"] += n
            state["batches"] += 1
            if n and state["first_at"] is None:
                state["first_at"] = time.monotonic()
            if a.progress:
                log(f"batch {p.batchId}: {n} rows, {p.durationMs.get('triggerExecution')} ms; total {state['records']}")
            if a.expect and state["records"] >= a.expect and state["done_at"] is None:
                state["done_at"] = time.monotonic()
                done.set()

        def onQueryIdle(self, event):
            pass

        def onQueryTerminated(self, event):
            if event.exception:
                log(f"query terminated with: {event.exception}")
            ended.set()

    spark.streams.addListener(Listener())

    opts = {"kafka.bootstrap.servers": a.bootstrap, "subscribe": a.input, "startingOffsets": "earliest"}
    if a.max_offsets_per_trigger:
        opts["maxOffsetsPerTrigger"] = str(a.max_offsets_per_trigger)
    src = spark.readStream.format("kafka").options(**opts).load()
    if a.sink == "kafka":
        out = src.selectExpr(
            "key",
            "concat(value, cast(concat('|', cast(partition as string), ':', cast(offset as string)) as binary)) as value")
    else:
        out = src.selectExpr(
            "concat(cast(value as string), '|', cast(partition as string), ':', cast(offset as string)) as value")

    w = out.writeStream.option("checkpointLocation", checkpoint).queryName(a.app_id.replace("-", "_"))
    w = w.trigger(processingTime=f"{a.trigger_ms} milliseconds")
    if a.sink == "kafka":
        w = w.format("kafka").option("kafka.bootstrap.servers", a.bootstrap).option("topic", a.output)
    else:
        w = w.format(a.file_format).option("path", out_dir)

    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu0 = proc_cpu_seconds(jvm_pid) + ru.ru_utime + ru.ru_stime
    t0 = time.monotonic()
    q = w.start()

    def on_term(signum, frame):
        log("SIGTERM: stopping the query")
        q.stop()
        sys.exit(143)
    signal.signal(signal.SIGTERM, on_term)

    if a.expect <= 0:
        while not ended.wait(1.0):
            pass
        spark.stop()
        sys.exit(1)

    deadline = t0 + a.timeout_s
    while not done.wait(0.05):
        if ended.is_set() or not q.isActive:
            log("the query stopped before reaching --expect")
            sys.exit(1)
        if time.monotonic() > deadline:
            log(f"timed out after {a.timeout_s} s with {state['records']} of {a.expect} records")
            q.stop()
            sys.exit(1)
    t1 = state["done_at"]
    ru = resource.getrusage(resource.RUSAGE_SELF)
    cpu_done = proc_cpu_seconds(jvm_pid) + ru.ru_utime + ru.ru_stime
    q.stop()
    t2 = time.monotonic()
    jvm_cpu = proc_cpu_seconds(jvm_pid)
    jvm_hwm = proc_hwm_mb(jvm_pid)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    py_cpu = ru.ru_utime + ru.ru_stime
    py_hwm = ru.ru_maxrss / 1024.0
    seconds = t1 - t0
    summary = {
        "records": state["records"],
        "seconds": round(seconds, 3),
        "cpuSeconds": round(jvm_cpu + py_cpu, 3),
        "peakRssMB": round(jvm_hwm + py_hwm, 1),
        "peer": "spark",
        "version": spark.version,
        "sink": a.sink,
        "triggerMs": a.trigger_ms,
        "batches": state["batches"],
        "recordsPerSecond": round(state["records"] / seconds),
        "firstBatchSeconds": round(state["first_at"] - t0, 3) if state["first_at"] else None,
        "stopSeconds": round(t2 - t1, 3),
        "jvmCpuSeconds": round(jvm_cpu, 3),
        "pythonCpuSeconds": round(py_cpu, 3),
        "jvmPeakRssMB": round(jvm_hwm, 1),
        "pythonPeakRssMB": round(py_hwm, 1),
        "startupSeconds": round(t0 - t_launch, 3),
        "cpuSecondsAfterStart": round(cpu_done - cpu0, 3),
    }
    spark.stop()
    for d in temp_dirs:
        shutil.rmtree(d, ignore_errors=True)
    print(json.dumps(summary, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    main()
