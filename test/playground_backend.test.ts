/**
 * The playground's backend choice without a browser (the browser test runs it in Chromium, with and without a
 * WebGPU adapter): why WebGPU is missing (no navigator.gpu, no adapter, an adapter request that never answers),
 * what auto / webgpu / wasm start, and the page's `set=key=value` config overrides.
 */
import { describe, expect, it } from 'vitest';
import { pickBackend, webgpuMissing } from '../src/playground/backend_choice.ts';
import { applySets, DEFAULT_SETTINGS, settingsToConfig } from '../src/playground/settings.ts';

describe('playground backend choice', () => {
  it('names why WebGPU is missing: no navigator.gpu, no adapter, a request that fails or never answers', async () => {
    expect(await webgpuMissing(undefined)).toBe('no navigator.gpu in this browser');
    expect(await webgpuMissing({})).toBe('no navigator.gpu in this browser');
    expect(await webgpuMissing({ gpu: { requestAdapter: async () => null } })).toBe('navigator.gpu gave no adapter');
    expect(await webgpuMissing({ gpu: { requestAdapter: () => Promise.reject(new Error('lost')) } })).toBe('navigator.gpu gave no adapter');
    expect(await webgpuMissing({ gpu: { requestAdapter: () => new Promise(() => {}) } }, 20)).toBe('navigator.gpu gave no adapter');
    expect(await webgpuMissing({ gpu: { requestAdapter: async () => ({ name: 'an adapter' }) } })).toBeNull();
  });

  it('auto takes WebGPU where an adapter answers, else wasm with the reason; webgpu forced without one is an error', () => {
    expect(pickBackend('auto', null)).toEqual({ backend: 'webgpu', note: 'the browser gave a GPU adapter' });
    expect(pickBackend('auto', 'no adapter here')).toEqual({ backend: 'wasm', note: 'no WebGPU: no adapter here' });
    expect(pickBackend('webgpu', null)).toEqual({ backend: 'webgpu', note: 'forced (backend=webgpu)' });
    expect(() => pickBackend('webgpu', 'no adapter here')).toThrow('backend webgpu was asked for, but WebGPU is not available: no adapter here; choose auto or wasm');
    expect(pickBackend('wasm', null)).toEqual({ backend: 'wasm', note: 'forced (backend=wasm)' });
    expect(pickBackend('wasm', 'no adapter here')).toEqual({ backend: 'wasm', note: 'forced (backend=wasm)' });
  });

  it('set=key=value overrides: dotted keys, JSON values or bare strings, on a copy', () => {
    const base = settingsToConfig(DEFAULT_SETTINGS, 100);
    const out = applySets(base, ['balance.grad_reweight.enabled=true', 'balance.grad_reweight.mode=importance', 'lr=0.5', 'capacity_factor=null', 'router.order = topk-softmax']);
    expect((out.balance as { grad_reweight: unknown }).grad_reweight).toEqual({ enabled: true, mode: 'importance' });
    expect((out.balance as { aux_free: { enabled: boolean } }).aux_free.enabled).toBe(false); // siblings kept
    expect(out.lr).toBe(0.5);
    expect(out.capacity_factor).toBeNull();
    expect(out.router).toEqual({ type: 'topk', order: 'topk-softmax' });
    expect(base.lr).toBe(DEFAULT_SETTINGS.lr); // the input is not changed
    expect(() => applySets(base, ['lr'])).toThrow('set=lr: expected key=value with a dotted config key');
    expect(() => applySets(base, ['a..b=1'])).toThrow(/expected key=value/);
  });
});
