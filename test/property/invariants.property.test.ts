// One named property per invariant of DESIGN.md ("Invariants" 1–6; 7 fencing and 8
// integrity have their own tests): the simulator of test/support/protocol-model.ts —
// appends, retention, new partitions, code changes, runs crashed at every protocol point by
// kill and by power loss — checked after every command against that invariant alone, with
// staged outputs (a non-deterministic transform) and without (a deterministic one).
import * as fc from 'fast-check';
import {
  boundedOrderedFlight, continuity, exactlyOnceEffect, monotonicPositions, nothingLostSilently, protocolProperty, replayIsExact, type Check,
} from '../support/protocol-model';
import { propertyParams } from './params';

const invariants: ReadonlyArray<[string, Check]> = [
  ['invariant 1: continuity', continuity],
  ['invariant 2: monotonic positions', monotonicPositions],
  ['invariant 3: bounded, ordered flight', boundedOrderedFlight],
  ['invariant 4: replay is exact', replayIsExact],
  ['invariant 5: exactly-once effect', exactlyOnceEffect],
  ['invariant 6: nothing lost silently', nothingLostSilently],
];

for (const [name, check] of invariants) {
  describe(name, () => {
    for (const stageOutputs of [true, false]) {
      it(`holds after every command, ${stageOutputs ? 'outputs staged (non-deterministic transform)' : 'stageOutputs: false (deterministic transform)'}`, async () => {
        await fc.assert(protocolProperty(stageOutputs, [check]), propertyParams(stageOutputs ? 100 : 60));
      });
    }
  });
}
