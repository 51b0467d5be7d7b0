// Another attempt after a transient failure (network, 5xx, 429), with exponential backoff.
import { setTimeout as sleep } from 'node:timers/promises';
import { log } from '../log.ts';
import { isTransient } from './errors.ts';

export interface RetryPolicy {
  /** Attempts in all, including the first. */
  attempts: number;
  /** Pause before the second attempt; doubled before each further one. */
  delayMs: number;
}

export async function retrying<T>(policy: RetryPolicy, operation: (attempt: number) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (!(await pauseBeforeRetry(policy, attempt, error))) throw error;
    }
  }
}

/**
 * After failure number `failures` with `error`: false when another attempt cannot help or none
 * is left; otherwise logs `nextStep` and waits out the backoff before returning true.
 */
export async function pauseBeforeRetry(policy: RetryPolicy, failures: number, error: unknown, nextStep = 'trying again'): Promise<boolean> {
  if (!isTransient(error) || failures >= policy.attempts) return false;
  const delay = policy.delayMs * 2 ** (failures - 1);
  log.warn(`${(error as Error).message}; ${nextStep} in ${delay} ms (attempt ${failures + 1} of ${policy.attempts})`);
  await sleep(delay);
  return true;
}
