// Model-based test of the whole protocol (test/support/protocol-model.ts): random command
// sequences checked against all the invariants of DESIGN.md at once, a crash at every
// named point by each kind of crash, and the durability rule's sync count.
// test/property/invariants.property.test.ts runs the same simulator against each
// invariant by name.
import * as fc from 'fast-check';
import { CheckpointStore } from '../../checkpoint/store';
import type { KVOp } from '../../checkpoint/kv';
import { decodeJSON, unseal } from '../../checkpoint/codec';
import { Engine } from 'tidemark';
import {
  ALL_INVARIANTS, Append, MAX_IN_FLIGHT, corruptions, damageOutcomes, DamageValue, drain, firedPhases, flightsSeen, job, LoseNewest, newWorld, PHASES, protocolProperty, Run,
} from '../support/protocol-model';
import { propertyParams } from './params';

describe('the protocol under crashes (model-based)', () => {
  for (const stageOutputs of [true, false]) {
    it(`keeps invariants 1–6 together with ${stageOutputs ? 'staged outputs (non-deterministic transform)' : 'stageOutputs: false (deterministic transform)'}`, async () => {
      await fc.assert(protocolProperty(stageOutputs, ALL_INVARIANTS), propertyParams(stageOutputs ? 300 : 200));
    });
  }

  for (const stageOutputs of [true, false]) {
    it(`a damaged value or synced writes lost without a report end in exit 7 before any sink write, or an exact continuation (${stageOutputs ? 'staged outputs' : 'stageOutputs: false'})`, async () => {
      const before = { ...damageOutcomes };
      await fc.assert(protocolProperty(stageOutputs, ALL_INVARIANTS, corruptions), propertyParams(stageOutputs ? 150 : 100));
      console.log(`runs after damage: refused ${damageOutcomes.refused - before.refused}, continued exactly ${damageOutcomes.continued - before.continued}`);
    });
  }

  it('a checkpoint that lost its last COMMIT (and STAGE), reported to the source and delivered, is refused with exit 7', async () => {
    for (const n of [1, 2]) {
      const { world, model } = newWorld(1, true, ALL_INVARIANTS);
      await new Append(0, 7).run(model, world);
      await new Run(3, null, false).run(model, world);
      const refused = damageOutcomes.refused;
      await new LoseNewest(n).run(model, world); // 1: COMMIT 3; 2: COMMIT 3 and STAGE 3
      expect(damageOutcomes.refused).toBe(refused + 1);
      await new DamageValue(1, 'flip', 77).run(model, world); // the committed state: its checksum
      expect(damageOutcomes.refused).toBe(refused + 2);
      await drain(world, model);
    }
  });

  it('keeps the invariants after a crash at every named point, by each kind of crash', async () => {
    // The random runs reach every point too (their counts are printed); this makes sure of
    // it on every seed: each point, each kind, first and second occurrence.
    for (const phase of PHASES) {
      for (const kind of ['kill', 'power'] as const) {
        for (const nth of [1, 2]) {
          const { world, model } = newWorld(2, true, ALL_INVARIANTS);
          await new Append(0, 7).run(model, world);
          await new Append(1, 4).run(model, world);
          await new Run(2, null, false).run(model, world);
          await new Append(1, 5).run(model, world);
          const crashing = new Run(10, { phase, nth, kind, keep: 0 }, false);
          await crashing.run(model, world);
          // Every point is reached twice in this run (three batches), but recovery once.
          expect([phase, kind, nth, crashing.crashed]).toEqual([phase, kind, nth, phase !== 'recovering' || nth === 1]);
          await drain(world, model);
        }
      }
    }
    const points = PHASES.flatMap((p) => [`kill:${p}`, `power:${p}`]);
    console.log(`crashes per point: ${points.map((p) => `${p}=${firedPhases.get(p) ?? 0}`).join(' ')}`);
    // Pipelined (batch.maxInFlight 2, the default): crashes leave two batches in flight too, under both kinds.
    console.log(`checkpoints after a command by batches in flight: ${[...flightsSeen].sort(([a], [b]) => a - b).map(([n, c]) => `${n}=${c}`).join(' ')}`);
    expect(flightsSeen.get(MAX_IN_FLIGHT) ?? 0).toBeGreaterThan(0);
  });

  it('syncs two writes per batch, the STAGE and the COMMIT, and never the PLAN', async () => {
    const { world } = newWorld(2, true, ALL_INVARIANTS);
    world.log.append(0, 10);
    world.log.append(1, 7);
    const engine = new Engine(job(world), { store: new CheckpointStore(world.kv, 'model'), fingerprint: 'v0' });
    const summary = await engine.run({ once: true });
    const synced = world.kv.log.filter((w) => w.sync);
    // One synced write for the meta at the first start, then two per batch.
    expect(synced.length).toBe(1 + 2 * summary.batches);
    const isPlan = (w: { ops: readonly KVOp[] }): boolean => w.ops.length === 1 && w.ops[0]!.type === 'put' && w.ops[0]!.key.startsWith('batch!')
      && decodeJSON<{ state: string }>(unseal(w.ops[0]!.key, (w.ops[0] as { value: Uint8Array }).value, false)).state === 'planned';
    expect(world.kv.log.filter(isPlan).length).toBe(summary.batches);
    expect(world.kv.log.filter((w) => isPlan(w) && w.sync).length).toBe(0);
  });
});
