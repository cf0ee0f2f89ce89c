// The page's side of the worker: requests as promises, events as callbacks.

export function createEngine(handlers) {
  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  const pending = new Map();
  let nextId = 0;
  worker.onmessage = ({ data }) => {
    if ((data.status === 'result' || data.status === 'error') && pending.has(data.id)) {
      const { resolve, reject } = pending.get(data.id);
      pending.delete(data.id);
      if (data.status === 'result') resolve(data);
      else reject(Object.assign(new Error(data.message), { during: data.during }));
      return;
    }
    handlers[data.status]?.(data);
  };
  return {
    /** Fire-and-forget loads: answered by 'ready' / 'sae-ready' / 'error' events. */
    post: (message) => worker.postMessage(message),
    /** A request answered by {result, ms}. */
    request(type, payload) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ type, id, ...payload });
      });
    },
  };
}
