/**
 * Stable dashboard UIDs. Never change one: Grafana links, bookmarks and provisioning refer to dashboards by UID.
 */
export const DASHBOARD_UIDS = Object.freeze({
  mesh: 'meshtel-mesh',
  service: 'meshtel-service',
  workload: 'meshtel-workload',
  meshtel: 'meshtel-sidecar',
});
