import { afterAll, beforeAll } from 'vitest';
import { startTestController, type TestController, type TestNode } from './helpers.ts';

export interface ControllerFixture {
  /** The running controller (from beforeAll on). */
  readonly t: TestController;
  /** A node whose client is closed after the file's tests. */
  track(node: TestNode): TestNode;
}

/** A test controller for the whole file: started before its tests, stopped after them with every tracked node's client. */
export function useTestController(options: Parameters<typeof startTestController>[0] = {}): ControllerFixture {
  let running: TestController | undefined;
  const nodes: TestNode[] = [];
  beforeAll(async () => {
    running = await startTestController(options);
  });
  afterAll(async () => {
    await Promise.all(nodes.map((node) => node.client.close()));
    await running?.close();
  });
  return {
    get t() {
      if (!running) throw new Error('the test controller is not running yet');
      return running;
    },
    track(node) {
      nodes.push(node);
      return node;
    },
  };
}
