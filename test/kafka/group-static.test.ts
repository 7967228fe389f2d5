// Static membership (docs/scale-out.md, "Restarts in place"): two daemons with instance ids;
// one is killed -9 (then stopped with SIGTERM, which sends no LeaveGroup) and restarted in
// place (same checkpoint, same instance id) within the session timeout. The coordinator gives it its partitions back in the same generation
// without a rebalance: the other daemon is never revoked, and every output lands once.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRangeFiles, events, startDaemon, until, type GroupRun } from '../support/group';
import { bootstrap, closeClients, createTopic, produceRecords, uniqueTopic } from '../support/kafka';
import { killAll } from '../support/processes';

afterEach(killAll);
afterAll(closeClients);

it('a static member killed -9, or stopped with SIGTERM, and restarted in place gets its partitions back in the same generation; the other daemon is not revoked; every output lands once', async () => {
  const topic = uniqueTopic('gstatic');
  await createTopic(topic, 4);
  // A session long enough for a restart on a loaded machine; the restart does not wait for it.
  const run: GroupRun = { dir: mkdtempSync(join(tmpdir(), 'tidemark-gstatic-')), topic, brokers: bootstrap(), env: { GROUP_SESSION_MS: '15000' } };
  const as = (id: string): GroupRun => ({ ...run, env: { ...run.env, TIDEMARK_INSTANCE_ID: `${topic}-${id}` } });
  const produced = new Map<number, string[]>();
  const a = startDaemon(as('a'), 0);
  const b = startDaemon(as('b'), 1);
  // What a daemon owns now, partition → epoch, from its assignment and revocation lines.
  const owned = (c: typeof a): Map<string, unknown> => {
    const now = new Map<string, unknown>();
    for (const e of events(c)) {
      if (e.event === 'assigned') now.set(String(e.partition), e.epoch);
      if (e.event === 'revoked') now.delete(String(e.partition));
    }
    return now;
  };
  await until(() => owned(a).size > 0 && owned(b).size > 0 && owned(a).size + owned(b).size === 4, 30_000, 'both daemons to share the 4 partitions', { a, b });
  await produceRecords(topic, 4, 1000, produced, 'a');
  await until(() => checkRangeFiles(run.dir, produced).found === 1000 && events(a, 'handoff').length > 0, 30_000, 'every output of the first records', { a, b });

  const before = owned(a);
  // The group's generation now: the newest of every assignment's epoch and revocation's generation.
  const generation = Math.max(...[...events(a), ...events(b)].map((e) => Number(e.generation ?? e.epoch ?? 0)));
  const revokedBefore = events(b, 'revoked').length;
  const assignedBefore = events(b, 'assigned').length;
  const killedAt = Date.now();
  a.proc.kill('SIGKILL');
  await a.exited;
  const again = startDaemon(as('a'), 0);
  await produceRecords(topic, 4, 1000, produced, 'b');
  await until(() => checkRangeFiles(run.dir, produced).found === 2000 && events(again, 'handoff').length === before.size, 40_000, 'every output after the restart', { again, b });

  // Same partitions, same generation: no rebalance happened, b saw nothing.
  expect([...owned(again).keys()].sort()).toEqual([...before.keys()].sort());
  expect(new Set(owned(again).values())).toEqual(new Set([generation]));
  expect(events(b, 'revoked').length).toBe(revokedBefore);
  expect(events(b, 'assigned').length).toBe(assignedBefore);
  expect(checkRangeFiles(run.dir, produced)).toEqual({ expected: 2000, found: 2000, lost: 0, duplicated: 0, discontinuities: [] });

  // SIGTERM: drained and exit 0, but no LeaveGroup — a restart in place keeps the partitions again.
  again.proc.kill('SIGTERM');
  expect((await again.exited).code).toBe(0);
  const third = startDaemon(as('a'), 0);
  await produceRecords(topic, 4, 1000, produced, 'c');
  await until(() => checkRangeFiles(run.dir, produced).found === 3000 && events(third, 'handoff').length === before.size, 40_000, 'every output after the restart from SIGTERM', { third, b });
  expect(new Set(owned(third).values())).toEqual(new Set([generation]));
  expect(events(b, 'revoked').length).toBe(revokedBefore);
  expect(events(b, 'assigned').length).toBe(assignedBefore);
  expect(checkRangeFiles(run.dir, produced)).toEqual({ expected: 3000, found: 3000, lost: 0, duplicated: 0, discontinuities: [] });
  const firstCommit = Math.min(...events(again, 'handoff').map((e) => Number(e.at)));
  // The figure for docs/scale-out.md: kill → first commit of the restarted daemon.
  process.stdout.write(`static restart in place: ${firstCommit - killedAt} ms from SIGKILL to the first commit after the restart\n`);
}, 60_000);

it('a second daemon on another checkpoint with the same instance id replaces the first, which stops with TIDEMARK_BAD_CONFIG; every output lands once', async () => {
  const topic = uniqueTopic('gstatic2');
  await createTopic(topic, 2);
  const run: GroupRun = { dir: mkdtempSync(join(tmpdir(), 'tidemark-gstatic2-')), topic, brokers: bootstrap(), env: { GROUP_SESSION_MS: '15000', TIDEMARK_INSTANCE_ID: `${topic}-same` } };
  const produced = new Map<number, string[]>();
  const first = startDaemon(run, 0);
  await until(() => events(first, 'assigned').length === 2, 30_000, 'the first daemon to own both partitions', { first });
  await produceRecords(topic, 2, 500, produced, 'a');
  await until(() => checkRangeFiles(run.dir, produced).found === 500, 30_000, 'the first outputs', { first });

  const second = startDaemon(run, 1);
  expect((await first.exited).code).toBe(2);
  expect(first.stderr()).toContain(`with instance id ${topic}-same`);
  await produceRecords(topic, 2, 500, produced, 'b');
  await until(() => checkRangeFiles(run.dir, produced).found === 1000, 30_000, 'every output by the second daemon', { second });
  expect(events(second, 'assigned').length).toBe(2);
  expect(checkRangeFiles(run.dir, produced)).toEqual({ expected: 1000, found: 1000, lost: 0, duplicated: 0, discontinuities: [] });
}, 60_000);
