/**
 * Replayed istio/proxy scenarios that fail on main for a reason another helper's point fixes. They are listed, not
 * run as passing tests (`it.todo` in pending.test.ts); move one back into its suite when main has the fix.
 */
export interface PendingScenario {
  /** Upstream test and case. */
  readonly scenario: string;
  /** Upstream files (istio/proxy release-1.29 184641e1 unless said otherwise). */
  readonly upstream: string;
  /** What meshtel does instead, and why it is not fixed here. */
  readonly reason: string;
  /** The helper whose point fixes it. */
  readonly owner: 'stats' | 'sidecar-sec';
}

export const PENDING: readonly PendingScenario[] = [
  {
    scenario: 'TestStatsServerWaypointProxy, TestStatsServerWaypointProxyCONNECT',
    upstream: 'testdata/metric/server_waypoint_proxy_request_total.yaml.tmpl, server_waypoint_proxy_connect_*.yaml.tmpl',
    reason: 'waypoint destination_cluster is the waypoint\'s own cluster and empty upstream fields are "" instead of unknown (issue 10.4)',
    owner: 'stats',
  },
];
