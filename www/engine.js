// The page's side of the worker: every request a promise of {result, ms}; the status events
// (worker.js lists them) go to `handlers[status]`.

export function createEngine(handlers) {
  const worker = new Worker(new URL('../worker.js', import.meta.url), { type: 'module' });
  const pending = new Map();
  let nextId = 0;
  worker.onmessage = ({ data }) => {
    if (data.status === 'result' || data.status === 'error') {
      const { resolve, reject } = pending.get(data.id) ?? {};
      pending.delete(data.id);
      if (data.status === 'result') resolve?.(data);
      else reject?.(new Error(data.message));
      return;
    }
    handlers[data.status]?.(data);
  };
  return {
    request(type, payload) {
      const id = nextId++;
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        worker.postMessage({ type, id, ...payload });
      });
    },
  };
}
