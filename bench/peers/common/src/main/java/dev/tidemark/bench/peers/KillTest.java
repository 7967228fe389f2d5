package dev.tidemark.bench.peers;

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Recovery after SIGKILL, for any peer that writes to a Kafka topic.
 *
 * <pre>
 * KillTest --bootstrap B --output TOPIC [--kills 5] [--records-before-kill 20000]
 *          [--settle-ms 2000] [--timeout-s 180] -- COMMAND ARGS...
 * </pre>
 *
 * Starts COMMAND (a peer that runs until killed), waits until --records-before-kill new records
 * are visible in the output topic to a read_committed consumer, SIGKILLs the process and all its
 * descendants, waits --settle-ms (so a commit that was already in flight lands and is not taken
 * for new output), moves the consumer to the end of the topic, restarts COMMAND, and measures
 * the time from the restart (process spawn) to the first output record the consumer receives.
 * Repeated --kills times (each restart runs until it has written --records-before-kill records,
 * then is killed again). The last process is stopped with SIGTERM (SIGKILL after 30 s).
 *
 * <p>stdout: one JSON line {"kills":N,"recoveryMs":[...],"medianMs":M,"minMs":..,"maxMs":..}.
 * The peer's own output goes to stderr with the prefix "[peer] ".
 */
public final class KillTest {

  private static volatile Process current;

  static {
    // Whatever happens (a failure, Ctrl-C), don't leave a peer running.
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      Process p = current;
      if (p != null && p.isAlive()) {
        p.toHandle().descendants().forEach(ProcessHandle::destroyForcibly);
        p.destroyForcibly();
      }
    }));
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> a = new HashMap<>();
    List<String> cmd = new ArrayList<>();
    for (int i = 0; i < argv.length; i++) {
      if (argv[i].equals("--")) { cmd.addAll(Arrays.asList(argv).subList(i + 1, argv.length)); break; }
      if (!argv[i].startsWith("--") || i + 1 >= argv.length) usage("bad argument: " + argv[i]);
      a.put(argv[i].substring(2), argv[++i]);
    }
    if (!a.containsKey("bootstrap") || !a.containsKey("output") || cmd.isEmpty()) usage("need --bootstrap, --output and -- COMMAND");
    String bootstrap = a.get("bootstrap"), output = a.get("output");
    int kills = Integer.parseInt(a.getOrDefault("kills", "5"));
    long before = Long.parseLong(a.getOrDefault("records-before-kill", "20000"));
    long settleMs = Long.parseLong(a.getOrDefault("settle-ms", "2000"));
    long timeoutS = Long.parseLong(a.getOrDefault("timeout-s", "180"));

    Properties cp = new Properties();
    cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    cp.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");  // never create the topic we watch
    cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    cp.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "10");  // the probe itself must not add latency

    List<Long> recovery = new ArrayList<>();
    Process p = null;
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp)) {
      List<TopicPartition> parts = Collections.emptyList();
      // The output topic may not exist yet (peers create it on start): start the peer, then wait for it.
      p = start(cmd);
      long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);
      while (parts.isEmpty()) {
        List<PartitionInfo> info = c.partitionsFor(output, Duration.ofSeconds(5));
        if (info != null && !info.isEmpty()) {
          parts = info.stream().map(x -> new TopicPartition(output, x.partition())).collect(Collectors.toList());
        } else {
          check(p, deadline, "the output topic " + output + " to appear");
          Thread.sleep(200);
        }
      }
      c.assign(parts);
      c.seekToEnd(parts);
      for (TopicPartition tp : parts) c.position(tp);
      log("output %s has %d partitions; waiting for %d records", output, parts.size(), before);

      for (int k = 1; k <= kills; k++) {
        waitRecords(c, p, before, timeoutS, "records before kill " + k);
        List<ProcessHandle> tree = new ArrayList<>();
        tree.add(p.toHandle());
        p.toHandle().descendants().forEach(tree::add);
        for (ProcessHandle h : tree) h.destroyForcibly();  // SIGKILL on Linux
        p.waitFor();
        for (ProcessHandle h : tree) h.onExit().get(30, TimeUnit.SECONDS);
        log("kill %d: SIGKILLed %d process(es); settling %d ms", k, tree.size(), settleMs);
        Thread.sleep(settleMs);
        c.poll(Duration.ZERO);
        c.seekToEnd(parts);
        for (TopicPartition tp : parts) c.position(tp);

        long t0 = System.nanoTime();
        p = start(cmd);
        long first = waitRecords(c, p, 1, timeoutS, "the first output record after restart " + k);
        long ms = Math.round((first - t0) / 1e6);
        recovery.add(ms);
        log("restart %d: first new output record after %d ms", k, ms);
      }
    } finally {
      if (p != null && p.isAlive()) {
        List<ProcessHandle> tree = new ArrayList<>();
        p.toHandle().descendants().forEach(tree::add);
        p.destroy();
        if (!p.waitFor(30, TimeUnit.SECONDS)) p.destroyForcibly();
        for (ProcessHandle h : tree) if (h.isAlive()) h.destroyForcibly();
      }
    }
    List<Long> sorted = new ArrayList<>(recovery);
    Collections.sort(sorted);
    long median = sorted.get(sorted.size() / 2);
    if (sorted.size() % 2 == 0) median = (sorted.get(sorted.size() / 2 - 1) + sorted.get(sorted.size() / 2)) / 2;
    System.out.println(String.format(Locale.ROOT,
        "{\"kills\":%d,\"recoveryMs\":%s,\"medianMs\":%d,\"minMs\":%d,\"maxMs\":%d,\"recordsBeforeKill\":%d,\"settleMs\":%d}",
        recovery.size(), recovery.toString().replace(" ", ""), median, sorted.get(0), sorted.get(sorted.size() - 1), before, settleMs));
    System.exit(0);
  }

  /** Polls until n records arrive; returns System.nanoTime() at the arrival of the n-th. */
  static long waitRecords(KafkaConsumer<byte[], byte[]> c, Process p, long n, long timeoutS, String what) throws Exception {
    long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(timeoutS);
    long seen = 0;
    while (true) {
      ConsumerRecords<byte[], byte[]> rs = c.poll(Duration.ofMillis(5));
      seen += rs.count();
      if (seen >= n) return System.nanoTime();
      check(p, deadline, what);
    }
  }

  static void check(Process p, long deadline, String what) {
    if (!p.isAlive()) fail("the peer exited (code " + p.exitValue() + ") while waiting for " + what);
    if (System.nanoTime() > deadline) fail("timed out waiting for " + what);
  }

  static Process start(List<String> cmd) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true).redirectInput(ProcessBuilder.Redirect.from(new java.io.File("/dev/null")));
    Process p = pb.start();
    current = p;
    Thread pump = new Thread(() -> {
      try (BufferedReader r = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8))) {
        for (String line; (line = r.readLine()) != null; ) System.err.println("[peer] " + line);
      } catch (Exception e) {
        // process killed
      }
    }, "pump");
    pump.setDaemon(true);
    pump.start();
    return p;
  }

  static void log(String fmt, Object... args) {
    System.err.println("[kill-test] " + String.format(Locale.ROOT, fmt, args));
  }

  static void fail(String msg) {
    System.err.println("[kill-test] error: " + msg);
    System.exit(1);
  }

  static void usage(String msg) {
    System.err.println("[kill-test] error: " + msg);
    System.err.println("usage: KillTest --bootstrap B --output TOPIC [--kills 5] [--records-before-kill 20000] "
        + "[--settle-ms 2000] [--timeout-s 180] -- COMMAND ARGS...");
    System.exit(2);
  }
}
