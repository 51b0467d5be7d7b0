// Docker's graphdriver plugin protocol as dockerd 20.10 speaks it (daemon/graphdriver/proxy.go).
// Every call is a POST of JSON to /<Method>; empty fields are omitted by the daemon.

export interface IdMap {
  container_id: number;
  host_id: number;
  size: number;
}

export interface InitRequest {
  Home: string;
  Opts: string[] | null;
  UIDMaps: IdMap[] | null;
  GIDMaps: IdMap[] | null;
}

export interface LayerRequest {
  ID?: string;
  Parent?: string;
  MountLabel?: string;
  StorageOpt?: Record<string, string>;
}

/** Kind values of a change: 0 modified, 1 added, 2 deleted (pkg/archive ChangeType). */
export type ChangeKind = 0 | 1 | 2;

export interface Change {
  Path: string;
  Kind: ChangeKind;
}

export interface ActivateResponse {
  Implements: string[];
}

export interface ErrorResponse {
  Err: string;
}

export interface GetResponse {
  Dir: string;
}

export interface ExistsResponse {
  Exists: boolean;
}

export interface StatusResponse {
  Status: [string, string][];
}

export interface MetadataResponse {
  Metadata: Record<string, string>;
}

export interface ChangesResponse {
  Changes: Change[];
}

export interface SizeResponse {
  Size: number;
}

export interface CapabilitiesResponse {
  Capabilities: { ReproducesExactDiffs: boolean };
}

export const PLUGIN_ACCEPT_TYPE = 'application/vnd.docker.plugins.v1.2+json';
export const GRAPHDRIVER_INTERFACE = 'GraphDriver';
