package dev.tidemark.bench.peers;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * Counts the records of a topic as a read_committed consumer sees them (from the beginning to the
 * end offsets at start, i.e. the last stable offsets), and checks the peers' enrichment suffix
 * "|partition:offset": how many distinct source positions the values carry and how many records
 * repeat one (duplicates = records - distinct; 0 for an exactly-once run).
 *
 * <pre>CountRecords --bootstrap B --topic T [--timeout-s 120]</pre>
 *
 * stdout: {"topic":T,"records":N,"distinctSources":D,"duplicates":X,"withoutSuffix":W,"seconds":S}
 */
public final class CountRecords {
  public static void main(String[] argv) throws Exception {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
    if (!a.containsKey("bootstrap") || !a.containsKey("topic")) {
      System.err.println("usage: CountRecords --bootstrap B --topic T [--timeout-s 120]");
      System.exit(2);
    }
    String topic = a.get("topic");
    long timeoutS = Long.parseLong(a.getOrDefault("timeout-s", "120"));
    Properties cp = new Properties();
    cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
    cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    cp.put(ConsumerConfig.ALLOW_AUTO_CREATE_TOPICS_CONFIG, "false");  // never create the topic we watch
    cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "5000");
    cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    long t0 = System.nanoTime();
    long records = 0, noSuffix = 0;
    Set<Long> sources = new HashSet<>();
    try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(cp)) {
      List<TopicPartition> parts = c.partitionsFor(topic, Duration.ofSeconds(30)).stream()
          .map(x -> new TopicPartition(topic, x.partition())).collect(Collectors.toList());
      c.assign(parts);
      c.seekToBeginning(parts);
      Map<TopicPartition, Long> end = c.endOffsets(parts);
      long deadline = t0 + TimeUnit.SECONDS.toNanos(timeoutS);
      while (true) {
        boolean done = true;
        for (TopicPartition tp : parts) if (c.position(tp) < end.get(tp)) { done = false; break; }
        if (done) break;
        if (System.nanoTime() > deadline) {
          System.err.println("CountRecords: timed out; counted " + records + " so far");
          System.exit(1);
        }
        for (ConsumerRecord<byte[], byte[]> r : c.poll(Duration.ofMillis(200))) {
          records++;
          long src = source(r.value());
          if (src < 0) noSuffix++; else sources.add(src);
        }
      }
    }
    System.out.println(String.format(Locale.ROOT,
        "{\"topic\":\"%s\",\"records\":%d,\"distinctSources\":%d,\"duplicates\":%d,\"withoutSuffix\":%d,\"seconds\":%.3f}",
        topic, records, sources.size(), records - noSuffix - sources.size(), noSuffix, (System.nanoTime() - t0) / 1e9));
  }

  /** Parses the trailing "|partition:offset" into partition << 40 | offset, or -1. */
  static long source(byte[] v) {
    if (v == null) return -1;
    int bar = -1;
    for (int i = v.length - 1; i >= 0 && i >= v.length - 32; i--) if (v[i] == '|') { bar = i; break; }
    if (bar < 0) return -1;
    String s = new String(v, bar + 1, v.length - bar - 1, StandardCharsets.US_ASCII);
    int colon = s.indexOf(':');
    if (colon <= 0) return -1;
    try {
      return (Long.parseLong(s.substring(0, colon)) << 40) | Long.parseLong(s.substring(colon + 1));
    } catch (NumberFormatException e) {
      return -1;
    }
  }
}
