package dev.tidemark.bench.peers;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.errors.TopicExistsException;

/**
 * Creates --output (replication factor 1) with as many partitions as --input has, unless it exists.
 * Peers whose framework does not create its output topic call this first, so the broker's
 * auto-creation (1 partition) never decides the layout.
 *
 * <pre>EnsureTopic --bootstrap B --input IN --output OUT</pre>
 * stdout: {"output":OUT,"partitions":N,"created":true|false}
 */
public final class EnsureTopic {
  public static void main(String[] argv) throws Exception {
    Map<String, String> a = new HashMap<>();
    for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i].replaceFirst("^--", ""), argv[i + 1]);
    if (!a.containsKey("bootstrap") || !a.containsKey("input") || !a.containsKey("output")) {
      System.err.println("usage: EnsureTopic --bootstrap B --input IN --output OUT");
      System.exit(2);
    }
    Properties p = new Properties();
    p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, a.get("bootstrap"));
    try (Admin admin = Admin.create(p)) {
      String in = a.get("input"), out = a.get("output");
      int n = admin.describeTopics(List.of(in)).allTopicNames().get(30, TimeUnit.SECONDS).get(in).partitions().size();
      boolean created = false;
      if (!admin.listTopics().names().get(30, TimeUnit.SECONDS).contains(out)) {
        try {
          admin.createTopics(List.of(new NewTopic(out, n, (short) 1))).all().get(30, TimeUnit.SECONDS);
          created = true;
        } catch (ExecutionException e) {
          if (!(e.getCause() instanceof TopicExistsException)) throw e;
        }
      }
      int have = admin.describeTopics(List.of(out)).allTopicNames().get(30, TimeUnit.SECONDS).get(out).partitions().size();
      System.out.println("{\"output\":\"" + out + "\",\"partitions\":" + have + ",\"created\":" + created + "}");
    }
  }
}
