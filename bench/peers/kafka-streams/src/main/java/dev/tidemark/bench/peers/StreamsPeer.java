package dev.tidemark.bench.peers;

import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.processor.api.RecordMetadata;

/**
 * Kafka Streams peer: the same job as tidemark's Kafka -> Kafka benchmark row.
 *
 * <p>Reads {@code --input} (opaque byte values), appends the suffix {@code |<partition>:<offset>}
 * to each value (key and timestamp kept), writes to {@code --output}, with
 * processing.guarantee=exactly_once_v2. With {@code --expect N} it stops once N records are
 * <em>committed</em>: the processor notes, per input partition, the highest offset it processed;
 * when N records have been processed it snapshots those offsets and polls the application's
 * committed consumer-group offsets (Admin API) until every partition has reached its snapshot.
 * Then it closes cleanly and prints one JSON summary line on stdout. Everything else goes to
 * stderr.
 *
 * <p>{@code --expect 0} runs until killed (SIGTERM closes cleanly) — used by the kill test.
 */
public final class StreamsPeer {

  private static final String USAGE = String.join("\n",
      "usage: StreamsPeer --bootstrap HOST:PORT --input TOPIC --output TOPIC --app-id ID",
      "                   [--expect N] [--commit-interval-ms 100] [--threads 1]",
      "                   [--state-dir DIR] [--guarantee exactly_once_v2] [--timeout-s 600]",
      "                   [--progress-ms 0] [--static-membership] [--prop key=value ...]",
      "  --static-membership: group.instance.id=<app-id> (a restart takes over the killed member's",
      "  partitions at once instead of waiting session.timeout.ms for it to expire)");

  // Shared with the processors (one instance per task).
  static final AtomicLong PROCESSED = new AtomicLong();
  static final Map<Integer, Long> NEXT_OFFSET = new ConcurrentHashMap<>();
  static volatile long expect;
  static final CountDownLatch REACHED = new CountDownLatch(1);
  static volatile long firstRecordNanos;

  /** The "enrichment": value + "|partition:offset". */
  static final class Enrich implements FixedKeyProcessor<byte[], byte[], byte[]> {
    private FixedKeyProcessorContext<byte[], byte[]> context;

    @Override
    public void init(FixedKeyProcessorContext<byte[], byte[]> context) {
      this.context = context;
    }

    @Override
    public void process(FixedKeyRecord<byte[], byte[]> record) {
      RecordMetadata meta = context.recordMetadata().orElseThrow();
      byte[] suffix = ("|" + meta.partition() + ":" + meta.offset()).getBytes(StandardCharsets.US_ASCII);
      byte[] v = record.value();
      int n = v == null ? 0 : v.length;
      byte[] out = new byte[n + suffix.length];
      if (n > 0) System.arraycopy(v, 0, out, 0, n);
      System.arraycopy(suffix, 0, out, n, suffix.length);
      context.forward(record.withValue(out));

      NEXT_OFFSET.merge(meta.partition(), meta.offset() + 1, Math::max);
      long c = PROCESSED.incrementAndGet();
      if (c == 1) firstRecordNanos = System.nanoTime();
      if (expect > 0 && c >= expect) REACHED.countDown();
    }
  }

  public static void main(String[] argv) throws Exception {
    Map<String, String> a = new HashMap<>();
    Properties extra = new Properties();
    for (int i = 0; i < argv.length; i++) {
      String k = argv[i];
      if (k.equals("-h") || k.equals("--help")) { System.out.println(USAGE); return; }
      if (k.equals("--static-membership")) { a.put("static-membership", "true"); continue; }
      if (!k.startsWith("--") || i + 1 >= argv.length) die("bad argument: " + k);
      String v = argv[++i];
      if (k.equals("--prop")) {
        int eq = v.indexOf('=');
        if (eq <= 0) die("--prop wants key=value, got " + v);
        extra.setProperty(v.substring(0, eq), v.substring(eq + 1));
      } else {
        a.put(k.substring(2), v);
      }
    }
    for (String req : List.of("bootstrap", "input", "output", "app-id")) {
      if (!a.containsKey(req)) die("missing --" + req);
    }
    String bootstrap = a.get("bootstrap"), input = a.get("input"), output = a.get("output"), appId = a.get("app-id");
    expect = Long.parseLong(a.getOrDefault("expect", "0"));
    long commitMs = Long.parseLong(a.getOrDefault("commit-interval-ms", "100"));
    int threads = Integer.parseInt(a.getOrDefault("threads", "1"));
    long timeoutS = Long.parseLong(a.getOrDefault("timeout-s", "600"));
    long progressMs = Long.parseLong(a.getOrDefault("progress-ms", "0"));
    String guarantee = a.getOrDefault("guarantee", StreamsConfig.EXACTLY_ONCE_V2);

    boolean tempState = !a.containsKey("state-dir");
    Path stateDir = tempState ? Files.createTempDirectory("bench-peers-streams-") : Path.of(a.get("state-dir"));
    Files.createDirectories(stateDir);

    Properties adminProps = new Properties();
    adminProps.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    try (Admin admin = Admin.create(adminProps)) {
      List<TopicPartition> inParts = ensureTopics(admin, input, output);
      Map<TopicPartition, Long> baseline = committedOffsets(admin, appId, inParts);
      boolean resumed = !baseline.isEmpty();
      log("input %s: %d partitions; %s", input, inParts.size(),
          resumed ? "group " + appId + " has committed offsets, resuming" : "starting from the earliest offsets");

      Properties p = new Properties();
      p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
      p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
      p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
      p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, commitMs);
      p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, threads);
      p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
      p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
      if (a.containsKey("static-membership")) {
        p.put(StreamsConfig.mainConsumerPrefix(ConsumerConfig.GROUP_INSTANCE_ID_CONFIG), appId);
      }
      p.putAll(extra);

      StreamsBuilder b = new StreamsBuilder();
      b.stream(input, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray()))
          .processValues(Enrich::new)
          .to(output, Produced.with(Serdes.ByteArray(), Serdes.ByteArray()));

      KafkaStreams streams = new KafkaStreams(b.build(), p);
      CountDownLatch died = new CountDownLatch(1);
      streams.setUncaughtExceptionHandler(e -> {
        log("uncaught exception in a stream thread: %s", e);
        died.countDown();
        return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
      });
      Runtime.getRuntime().addShutdownHook(new Thread(() -> {
        if (streams.state().isRunningOrRebalancing()) streams.close(java.time.Duration.ofSeconds(30));
      }));

      double cpu0 = cpuSeconds();
      long t0 = System.nanoTime();
      streams.start();

      if (progressMs > 0) {
        Thread t = new Thread(() -> {
          long last = 0;
          while (true) {
            try { Thread.sleep(progressMs); } catch (InterruptedException e) { return; }
            long c = PROCESSED.get();
            log("progress: %d processed (+%d), state %s", c, c - last, streams.state());
            last = c;
          }
        }, "progress");
        t.setDaemon(true);
        t.start();
      }

      if (expect <= 0) {
        died.await();  // run until killed / SIGTERM (the hook closes) / a fatal error
        System.exit(1);
      }

      long deadline = t0 + TimeUnit.SECONDS.toNanos(timeoutS);
      while (!REACHED.await(50, TimeUnit.MILLISECONDS)) {
        if (died.getCount() == 0) fail("Kafka Streams failed; see stderr");
        if (System.nanoTime() > deadline) fail("timed out after " + timeoutS + " s with " + PROCESSED.get() + " of " + expect + " records processed");
      }
      long records = PROCESSED.get();
      Map<Integer, Long> target = new HashMap<>(NEXT_OFFSET);
      // Wait until the committed offsets (EOS: committed with the output transaction) cover the snapshot.
      while (true) {
        Map<TopicPartition, Long> committed = committedOffsets(admin, appId, inParts);
        boolean done = true;
        for (Map.Entry<Integer, Long> e : target.entrySet()) {
          Long c = committed.get(new TopicPartition(input, e.getKey()));
          if (c == null || c < e.getValue()) { done = false; break; }
        }
        if (done) break;
        if (died.getCount() == 0) fail("Kafka Streams failed while waiting for the commit; see stderr");
        if (System.nanoTime() > deadline) fail("timed out waiting for the commit of " + records + " records");
        Thread.sleep(20);
      }
      long t1 = System.nanoTime();
      double cpu1 = cpuSeconds();
      streams.close(java.time.Duration.ofSeconds(60));
      long t2 = System.nanoTime();
      if (tempState) deleteTree(stateDir);

      double seconds = (t1 - t0) / 1e9;
      String json = String.format(Locale.ROOT,
          "{\"records\":%d,\"seconds\":%.3f,\"cpuSeconds\":%.3f,\"peakRssMB\":%.1f,"
              + "\"peer\":\"kafka-streams\",\"version\":\"%s\",\"guarantee\":\"%s\",\"threads\":%d,"
              + "\"commitIntervalMs\":%d,\"recordsPerSecond\":%.0f,\"firstRecordSeconds\":%.3f,"
              + "\"closeSeconds\":%.3f,\"jvmUptimeSeconds\":%.3f,\"cpuSecondsAfterStart\":%.3f}",
          records, seconds, cpuSeconds(), peakRssMB(), org.apache.kafka.common.utils.AppInfoParser.getVersion(),
          guarantee, threads, commitMs, records / seconds,
          firstRecordNanos == 0 ? -1.0 : (firstRecordNanos - t0) / 1e9, (t2 - t1) / 1e9,
          ManagementFactory.getRuntimeMXBean().getUptime() / 1e3, cpu1 - cpu0);
      System.out.println(json);
      System.out.flush();
      System.exit(0);
    }
  }

  /** Describes the input; creates the output (same partition count, RF 1) if it does not exist. */
  static List<TopicPartition> ensureTopics(Admin admin, String input, String output) throws Exception {
    TopicDescription d = admin.describeTopics(List.of(input)).allTopicNames().get(30, TimeUnit.SECONDS).get(input);
    int n = d.partitions().size();
    Set<String> names = admin.listTopics().names().get(30, TimeUnit.SECONDS);
    if (!names.contains(output)) {
      try {
        admin.createTopics(List.of(new NewTopic(output, n, (short) 1))).all().get(30, TimeUnit.SECONDS);
        log("created output topic %s with %d partitions", output, n);
      } catch (java.util.concurrent.ExecutionException e) {
        if (!(e.getCause() instanceof TopicExistsException)) throw e;
      }
    }
    List<TopicPartition> parts = new ArrayList<>();
    for (int i = 0; i < n; i++) parts.add(new TopicPartition(input, i));
    return parts;
  }

  static Map<TopicPartition, Long> committedOffsets(Admin admin, String group, List<TopicPartition> parts) throws Exception {
    Map<TopicPartition, OffsetAndMetadata> m =
        admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
    Map<TopicPartition, Long> out = new HashMap<>();
    for (TopicPartition tp : parts) {
      OffsetAndMetadata o = m.get(tp);
      if (o != null) out.put(tp, o.offset());
    }
    return out;
  }

  static double cpuSeconds() {
    java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
    if (os instanceof com.sun.management.OperatingSystemMXBean s) return s.getProcessCpuTime() / 1e9;
    return -1;
  }

  /** VmHWM (peak resident set size) of this process, from /proc/self/status. */
  static double peakRssMB() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("VmHWM:")) {
          return Long.parseLong(line.replaceAll("[^0-9]", "")) / 1024.0;
        }
      }
    } catch (IOException | NumberFormatException e) {
      // fall through
    }
    return -1;
  }

  static void deleteTree(Path dir) {
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.sorted(Comparator.reverseOrder()).collect(Collectors.toList())) Files.deleteIfExists(p);
    } catch (IOException e) {
      log("could not delete %s: %s", dir, e);
    }
  }

  static void log(String fmt, Object... args) {
    System.err.println("[streams-peer] " + String.format(Locale.ROOT, fmt, args));
  }

  static void fail(String msg) {
    System.err.println("[streams-peer] error: " + msg);
    System.exit(1);
  }

  static void die(String msg) {
    System.err.println("[streams-peer] error: " + msg);
    System.err.println(USAGE);
    System.exit(2);
  }
}
