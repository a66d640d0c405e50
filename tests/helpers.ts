/** Small helpers shared by the test suites. */
import * as assert from 'uvu/assert';
import { HecaError } from '../tools/core/errors.ts';

/** The HecaError that `fn` throws; fails the test if it throws nothing or something else. */
export function errorOf(fn: () => unknown): HecaError {
  try {
    fn();
  } catch (e) {
    assert.instance(e, HecaError);
    return e as HecaError;
  }
  throw new Error('no error thrown');
}
