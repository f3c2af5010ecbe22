// The operator page: the live alert list and the offline map (Leaflet, no tiles), fed by
// /api/alerts, /api/map/layers, /api/tracks and the Server-Sent Events of /api/live.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  const list = document.getElementById("alert-list");
  const detail = document.getElementById("alert-detail");
  const status = document.getElementById("live-status");
  const mute = document.getElementById("mute");
  const canAct = document.getElementById("operator").dataset.canAct === "true";  // no inline script: the CSP forbids it
  const alerts = new Map();   // alert_id -> alert view
  const markers = new Map();  // alert_id -> Leaflet marker
  const tracks = new Map();   // track_id -> {marker, trail}
  let selected = null;
  let fitted = false;

  mute.checked = localStorage.getItem("ibet.mute") === "1";
  mute.addEventListener("change", () => localStorage.setItem("ibet.mute", mute.checked ? "1" : "0"));

  const map = L.map("map", { zoomControl: true, attributionControl: true, preferCanvas: true });
  map.attributionControl.setPrefix("Leaflet");
  map.setView([49.0, -100.0], 4);
  const layers = {
    sectors: L.layerGroup().addTo(map), border: L.layerGroup().addTo(map), ports: L.layerGroup().addTo(map),
    lanes: L.layerGroup().addTo(map),
    sensors: L.layerGroup().addTo(map), tracks: L.layerGroup().addTo(map), alerts: L.layerGroup().addTo(map),
  };
  L.control.layers(null, {
    "Sectors": layers.sectors, "Border": layers.border, "Ports of entry": layers.ports, "Port lanes": layers.lanes,
    "Fixed cameras": layers.sensors, "Tracks": layers.tracks, "Alerts": layers.alerts,
  }, { collapsed: false }).addTo(map);

  function beep() {
    if (mute.checked) return;
    try {
      const ctx = new (window.AudioContext || window.webkitAudioContext)();
      const osc = ctx.createOscillator(); const gain = ctx.createGain();
      osc.frequency.value = 880; gain.gain.value = 0.1;
      osc.connect(gain).connect(ctx.destination); osc.start(); osc.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio device: the list still shows the alert */ }
  }

  async function api(path, options) {
    const response = await fetch(path, Object.assign({ credentials: "same-origin" }, options || {}));
    if (!response.ok) {
      const text = await response.text();
      throw new Error(response.status + " " + text);
    }
    return response.json();
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const child of children || []) node.appendChild(child);
    return node;
  }

  // Leaflet puts a string tooltip in as HTML: every text on the map (titles, ids, names from the
  // registry, the ports file and the topics) goes in as an element whose textContent it is.
  function mapText(text) {
    return el("span", { text: String(text) });
  }

  function exerciseBadge(a) {
    return a.exercise ? [el("span", { "class": "badge exercise", text: "EXERCISE" })] : [];
  }

  function renderItem(a) {
    const li = el("li", { "class": "alert sev-" + a.severity + " state-" + a.state, "data-alert-id": a.alert_id, tabindex: "0" }, [
      el("div", { "class": "title" }, [...exerciseBadge(a), el("span", { text: a.title })]),
      el("div", { "class": "meta", text: a.sector_id + " · " + a.severity + " · " + a.state +
        (a.escalation_level ? " (level " + a.escalation_level + ")" : "") }),
      el("div", { "class": "time", text: a.created.local + " · " + a.created.utc }),
    ]);
    li.addEventListener("click", () => select(a.alert_id));
    return li;
  }

  function renderList() {
    const sorted = [...alerts.values()].sort((x, y) => y.updated_ts_ns - x.updated_ts_ns || (x.alert_id < y.alert_id ? -1 : 1));
    list.replaceChildren(...sorted.map(renderItem));
  }

  function upsertAlert(a, live) {
    const isNew = !alerts.has(a.alert_id);
    alerts.set(a.alert_id, a);
    const colour = a.state === "resolved" ? "#6c757d" : a.state === "acknowledged" ? "#e0a800" : "#d00000";
    let marker = markers.get(a.alert_id);
    if (!marker) {
      marker = L.circleMarker([a.lat_deg, a.lon_deg], { radius: 9, weight: 2 }).addTo(layers.alerts);
      marker.on("click", () => select(a.alert_id));
      markers.set(a.alert_id, marker);
    }
    marker.setStyle({ color: colour, fillColor: colour, fillOpacity: 0.5 });
    marker.bindTooltip(mapText((a.exercise ? "EXERCISE · " : "") + a.title + " (" + a.state + ")"));
    renderList();
    if (live && isNew) { beep(); map.setView([a.lat_deg, a.lon_deg], Math.max(map.getZoom(), 13)); }
    if (selected === a.alert_id) select(a.alert_id);
  }

  async function select(alertId) {
    selected = alertId;
    for (const li of list.children) li.classList.toggle("selected", li.dataset.alertId === alertId);
    const a = await api("/api/alerts/" + encodeURIComponent(alertId));
    const children = [
      el("h2", {}, [...exerciseBadge(a), el("span", { text: a.title })]),
      el("p", { text: a.summary }),
      el("p", { "class": "meta", text: "Raised " + a.created.local + " (" + a.created.utc + ") · sector " + a.sector_id +
        " · " + a.direction + " · state " + a.state + (a.status && a.status.outcome ? " (" + a.status.outcome + ")" : "") }),
      el("p", { "class": "meta", text: "Partners: " + (a.partners.map(p => p.name).join(", ") || "none") }),
    ];
    if (a.deliveries && a.deliveries.length) {
      children.push(el("ul", { "class": "deliveries", "aria-label": "deliveries to partners" }, a.deliveries.map(d =>
        el("li", { "class": "delivery status-" + d.status, text: d.partner + " · " + d.channel + ": " + d.status +
          (d.delivered ? " " + d.delivered.local : "") + (d.status !== "delivered" && d.last_error ? " (" + d.last_error + ")" : "") +
          (d.attempts > 1 ? " · " + d.attempts + " attempts" : "") }))));
    }
    if (a.evidence_refs && a.evidence_refs.length) {
      children.push(el("div", { "class": "evidence" }, a.evidence_refs.map(ref =>
        el("img", { src: "/api/evidence/" + ref, alt: "evidence " + ref, "class": "thumb" }))));
    }
    if (canAct && a.state !== "resolved") {
      const note = el("input", { "class": "note", placeholder: "note", "aria-label": "note" });
      const outcome = el("select", { "aria-label": "outcome" }, ["confirmed_crossing", "false_alarm", "lawful", "unresolved"]
        .map(o => el("option", { value: o, text: o })));
      const act = (action) => async () => {
        const body = { note: note.value };
        if (action === "resolve") body.outcome = outcome.value;
        try {
          const updated = await api("/api/alerts/" + encodeURIComponent(a.alert_id) + "/" + action, {
            method: "POST", headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf }, body: JSON.stringify(body),
          });
          upsertAlert(updated, false);
        } catch (e) { alert("Could not " + action + ": " + e.message); }
      };
      const buttons = [];
      if (a.state === "open" || a.state === "escalated") buttons.push(el("button", { "data-action": "acknowledge", text: "Acknowledge" }));
      buttons.push(el("button", { "data-action": "escalate", text: "Escalate" }));
      buttons.push(outcome, el("button", { "data-action": "resolve", text: "Resolve" }));
      for (const b of buttons) if (b.dataset && b.dataset.action) b.addEventListener("click", act(b.dataset.action));
      children.push(el("div", { "class": "actions" }, [note, ...buttons]));
    }
    detail.replaceChildren(...children);
    detail.hidden = false;
  }

  function upsertTrack(t) {
    let entry = tracks.get(t.track_id);
    if (t.status === "deleted") {
      if (entry) { layers.tracks.removeLayer(entry.marker); layers.tracks.removeLayer(entry.trail); tracks.delete(t.track_id); }
      return;
    }
    if (!entry) {
      entry = { marker: L.circleMarker([t.lat_deg, t.lon_deg], { radius: 5, color: "#0057b8", fillOpacity: 0.9 }).addTo(layers.tracks),
                trail: L.polyline([], { color: "#0057b8", weight: 2, opacity: 0.6 }).addTo(layers.tracks) };
      tracks.set(t.track_id, entry);
    }
    entry.marker.setLatLng([t.lat_deg, t.lon_deg]).bindTooltip(mapText(t.track_id + " · " + t.class_name + " · " + t.status));
    entry.trail.addLatLng([t.lat_deg, t.lon_deg]);
  }

  const health = new Map();
  function upsertHealth(h) {
    health.set(h.sensor_id, h);
    const items = [...health.values()].sort((x, y) => (x.state > y.state ? 1 : -1)).map(x =>
      el("li", { "class": x.state, text: x.sensor_id + " (" + x.sector_id + "): " +
        (x.state === "feed_lost" ? "feed lost, silent " + Math.round(x.silent_s) + " s" : "feed restored") }));
    document.getElementById("health-list").replaceChildren(...items);
  }

  async function loadLayers() {
    const data = await api("/api/map/layers");
    const style = {
      border: { color: "#000", weight: 2, dashArray: "6 4" },
      ports: { color: "#2b9348", weight: 1, fillOpacity: 0.1, dashArray: "3 3" },
      lanes: { color: "#2b9348", weight: 2, fillOpacity: 0.5 },
      sectors: { color: "#7b2cbf", weight: 1, fillOpacity: 0.05 },
    };
    for (const name of ["sectors", "border", "ports", "lanes"]) {
      const layer = L.geoJSON(data[name], {
        style: style[name],
        onEachFeature: (f, l) => { if (f.properties.name) l.bindTooltip(mapText(f.properties.name)); },
      }).addTo(layers[name]);
      if (name === "sectors" && layer.getLayers().length && !fitted) { map.fitBounds(layer.getBounds()); fitted = true; }
    }
    L.geoJSON(data.sensors, { pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 4, color: "#555" })
      .bindTooltip(mapText(f.properties.id)) }).addTo(layers.sensors);
  }

  async function loadAll() {
    const [list_, trackList, healthList] = await Promise.all([api("/api/alerts"), api("/api/tracks"), api("/api/sensor-health")]);
    for (const a of list_) upsertAlert(a, false);
    for (const t of trackList) upsertTrack(t);
    for (const h of healthList) upsertHealth(h);
  }

  function connect() {
    const source = new EventSource("/api/live");
    source.addEventListener("open", () => { status.textContent = "live"; status.className = "status live"; });
    source.addEventListener("error", () => { status.textContent = "reconnecting…"; status.className = "status down"; });
    source.addEventListener("alert", (e) => upsertAlert(JSON.parse(e.data), true));
    source.addEventListener("track", (e) => upsertTrack(JSON.parse(e.data)));
    source.addEventListener("health", (e) => upsertHealth(JSON.parse(e.data)));
  }

  loadLayers().then(loadAll).then(connect).catch((e) => { status.textContent = "error: " + e.message; });
})();
