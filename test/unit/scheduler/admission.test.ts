import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canAdmitAdapter } from '../../../src/engine/scheduler/admission.js';

const set = (...ids: string[]) => new Set(ids);

test('admission rule c.6', () => {
  assert.equal(canAdmitAdapter('a', set('a', 'b'), 2, set()), true, 'already in the batch');
  assert.equal(canAdmitAdapter('c', set('a', 'b'), 2, set()), false, 'more than S distinct ids');
  assert.equal(canAdmitAdapter('c', set('a'), 2, set()), true);
  // S = 3, p pinned (idle): the two other slots serve everything else.
  assert.equal(canAdmitAdapter('b', set('a'), 3, set('p')), true);
  assert.equal(canAdmitAdapter('c', set('a', 'b'), 3, set('p')), false, 'the pinned slot is reserved');
  assert.equal(canAdmitAdapter('p', set('a', 'b'), 3, set('p')), true, 'the pinned adapter uses its own slot');
  assert.equal(canAdmitAdapter('base', set('p'), 2, set('p')), true);
  assert.equal(canAdmitAdapter('q', set('base'), 3, set('p', 'q')), true);
  assert.equal(canAdmitAdapter('a', set('base'), 3, set('p', 'q')), false);
});
