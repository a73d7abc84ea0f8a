export { ZitadelSimulator, DEFAULT_SIMULATOR_TOKEN, type SimulatorOptions } from './simulator.js';
export {
  SimulatorState,
  ALL_PERMISSIONS,
  type Permission,
  type ProjectionMode,
  type SessionSeed,
  type SimSession,
  type RecordedCall,
  type Fault,
} from './state.js';
