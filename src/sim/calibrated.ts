/**
 * The cost model's link constants, fitted by `switchyard simulate --calibrate` to published measurements
 * (configs/calibration/published.yaml: DeepEP's H800 kernels and NCCL's all-to-all on H100). A topology file
 * gives line rates; these turn them into what a collective achieves:
 *   effective bandwidth = efficiency · line rate,   a phase = o + max over links (α · messages + bytes / bandwidth)
 * A test refits them and fails if they drift from the fit.
 */
export const CALIBRATED = {
  /** NVLink: achieved share of the line rate per direction. */
  nvlinkEfficiency: 0.705,
  /** RDMA NIC: achieved share of the line rate per direction. */
  nicEfficiency: 0.925,
  /** NVLink: µs per message (per peer and direction). Not identified by the published rows (calibration.ts): 0. */
  nvlinkLatencyUs: 0,
  /** RDMA NIC: µs per message (per peer and direction). Not identified by the published rows: 0. */
  nicLatencyUs: 0,
  /** Fixed cost of one all-to-all phase, µs: kernel launch and completion signalling. */
  phaseOverheadUs: 29.5,
} as const;
