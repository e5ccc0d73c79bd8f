// The sandbox page: live panels over Server-Sent Events, and the doors into the running bot
// (button clicks and /ops commands through the Slack stand-in's Socket Mode, actions through
// the intake, workflow runs through the runner, fault switches on the stand-ins).
"use strict";

(function () {
  const B = window.Blocks;
  const $ = (id) => document.getElementById(id);
  const state = { slack: null, current: "approvals", user: "", ephemeral: {}, unread: {}, seen: {} };

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    let data = {};
    try { data = await response.json(); } catch (e) { data = { error: response.statusText }; }
    if (!response.ok) throw new Error(data.error || response.statusText);
    return data;
  }

  function say(id, text, ok) {
    const node = $(id);
    node.textContent = text;
    node.className = "result " + (ok ? "ok" : "bad");
  }

  // -- Slack ----------------------------------------------------------------------------------
  function users() { return (state.slack && state.slack.users) || {}; }

  function renderChannels() {
    const nav = $("channels");
    nav.innerHTML = "";
    const home = document.createElement("a");
    home.href = "#home";
    home.className = "chan home" + (state.current === HOME ? " current" : "");
    home.textContent = "⌂ opsbot (App Home)";
    home.addEventListener("click", (ev) => { ev.preventDefault(); openHome(); });
    nav.appendChild(home);
    nav.appendChild(Object.assign(document.createElement("h4"), { textContent: "Channels" }));
    state.slack.channels.forEach((c) => {
      const a = B.esc(c.name);
      const item = document.createElement("a");
      item.href = "#" + c.name;
      item.dataset.channel = c.name;
      item.className = "chan" + (c.name === state.current ? " current" : "");
      const unread = state.unread[c.name] || 0;
      item.innerHTML = "# " + a + (unread ? ' <span class="unread">' + unread + "</span>" : "");
      item.addEventListener("click", (ev) => { ev.preventDefault(); select(c.name); });
      nav.appendChild(item);
    });
  }

  const HOME = "\u0000home";

  async function openHome() {
    state.current = HOME;
    renderSlack();
    try { await post("/api/home", {}); } catch (e) { alert("App Home did not open: " + e.message); }
  }

  function renderHome() {
    $("channel-title").textContent = "opsbot · App Home";
    const box = $("messages");
    box.innerHTML = "";
    const view = (state.slack.home || {})[state.user];
    if (!view) { box.innerHTML = '<p class="empty">Opening…</p>'; return; }
    const node = document.createElement("div");
    node.className = "msg home-view";
    node.appendChild(B.render(view.blocks, "", { users: users(), onButton: null }));
    box.appendChild(node);
  }

  function select(name) {
    state.current = name;
    state.unread[name] = 0;
    renderSlack();
  }

  async function click(element, node) {
    const message = node.closest(".msg");
    node.disabled = true;
    try {
      await post("/api/click", {
        channel: state.current, ts: message.dataset.ts,
        action_id: element.action_id, value: element.value || "",
      });
    } catch (e) {
      node.disabled = false;
      alert("The click did not reach opsbot: " + e.message);
    }
  }

  function messageNode(m) {
    const node = document.createElement("div");
    node.className = "msg";
    node.dataset.ts = m.ts;
    const who = users()[m.user] || m.user || "opsbot";
    const stamp = new Date(parseFloat(m.ts) * 1000).toLocaleTimeString();
    node.innerHTML = '<div class="meta"><b>' + B.esc(who) + "</b> <span>" + stamp +
      (m.edited ? " · edited" : "") + (m.thread_ts ? " · in thread" : "") + "</span></div>";
    node.appendChild(B.render(m.blocks, m.text, { users: users(), onButton: click }));
    return node;
  }

  function ephemeralNode(answer) {
    const node = document.createElement("div");
    node.className = "msg ephemeral";
    const kind = answer.response_type === "in_channel" ? "posted by opsbot in this channel" : "only visible to you";
    node.innerHTML = '<div class="meta"><b>opsbot</b> <span>' + kind + "</span></div>";
    node.appendChild(B.render(answer.blocks, answer.text, { users: users(), onButton: click }));
    return node;
  }

  function renderSlack() {
    if (!state.slack) return;
    renderChannels();
    $("command-form").style.display = state.current === HOME ? "none" : "";
    if (state.current === HOME) { renderHome(); return; }
    const channel = state.slack.channels.find((c) => c.name === state.current) || state.slack.channels[0];
    $("channel-title").textContent = "#" + channel.name;
    const box = $("messages");
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
    box.innerHTML = "";
    if (!channel.messages.length) box.innerHTML = '<p class="empty">No messages yet.</p>';
    channel.messages.forEach((m) => box.appendChild(messageNode(m)));
    (state.ephemeral[channel.name] || []).forEach((a) => box.appendChild(ephemeralNode(a)));
    if (atBottom || !state.seen[channel.name]) box.scrollTop = box.scrollHeight;
    state.seen[channel.name] = true;
  }

  function onSlack(data) {
    if (state.slack) {
      data.channels.forEach((c) => {
        const before = state.slack.channels.find((o) => o.name === c.name);
        const added = c.messages.length - (before ? before.messages.length : 0);
        if (added > 0 && c.name !== state.current) state.unread[c.name] = (state.unread[c.name] || 0) + added;
      });
    }
    state.slack = data;
    renderSlack();
  }

  function onResponse(answer) {
    const channel = (state.slack.channels.find((c) => c.id === answer.channel) || {}).name || state.current;
    (state.ephemeral[channel] = state.ephemeral[channel] || []).push(answer);
    renderSlack();
  }

  // -- modals (Details, Reject's reason) ------------------------------------------------------
  function onModal(view) {
    $("modal-title").innerHTML = B.textHtml(view.title, users());
    const body = $("modal-body");
    body.innerHTML = "";
    body.appendChild(B.render(view.blocks, "", { users: users(), onButton: null }));
    const submit = $("modal-submit");
    submit.style.display = view.submit ? "" : "none";
    if (view.submit) submit.innerHTML = B.textHtml(view.submit, users());
    submit.onclick = async () => {
      try {
        await post("/api/view", { view_id: view.id, values: B.values(body) });
        $("modal").classList.add("hidden");
      } catch (e) { alert("Not submitted: " + e.message); }
    };
    $("modal").classList.remove("hidden");
  }

  // -- platform panels -----------------------------------------------------------------------
  function link(url, text) {
    return url ? '<a href="' + B.esc(url) + '" target="_blank">' + B.esc(text) + "</a>" : B.esc(text);
  }

  function onNotion(data) {
    $("notion-title").textContent = data.title;
    $("notion").innerHTML = data.pages.length ? "" : '<p class="empty">No pages yet.</p>';
    data.pages.forEach((p) => {
      const props = Object.entries(p.properties).filter(([k]) => k !== "Opsbot Key")
        .map(([k, v]) => '<span class="prop">' + B.esc(k) + ": " + B.esc(v) + "</span>").join(" ");
      const row = document.createElement("div");
      row.className = "item notion-page";
      row.innerHTML = "<b>" + link(p.url, p.title || "(untitled)") + "</b><div>" + props + "</div>";
      $("notion").appendChild(row);
    });
  }

  function onTrello(data) {
    $("trello-title").textContent = data.board;
    $("trello").innerHTML = "";
    data.lists.forEach((l) => {
      const col = document.createElement("div");
      col.className = "list";
      col.innerHTML = "<h4>" + B.esc(l.name) + " <small>" + l.cards.length + "</small></h4>";
      l.cards.forEach((c) => {
        const labels = c.labels.map((x) => '<span class="label ' + B.esc(x.color || "") + '">' + B.esc(x.name) + "</span>").join("");
        const card = document.createElement("div");
        card.className = "item trello-card";
        card.innerHTML = labels + "<div>" + link(c.url, c.name) + "</div>";
        col.appendChild(card);
      });
      $("trello").appendChild(col);
    });
  }

  function onDrive(data) {
    $("drive-title").textContent = data.folder + "/";
    $("drive").innerHTML = data.files.length ? "" : '<p class="empty">No files yet.</p>';
    data.files.forEach((f) => {
      const row = document.createElement("div");
      row.className = "item drive-file";
      const where = f.folder ? B.esc(f.folder) + "/" : "";
      row.innerHTML = (f.is_folder ? "📁 " : "📄 ") + where + "<b>" + B.esc(f.name) + "</b> <small>" +
        B.esc(f.mime || "") + (f.shared.length ? " · shared with " + B.esc(f.shared.join(", ")) : "") + "</small>";
      $("drive").appendChild(row);
    });
  }

  function onSheets(data) {
    $("sheets-title").textContent = data.title;
    const root = $("sheets");
    root.innerHTML = "";
    data.sheets.forEach((s) => {
      const wrap = document.createElement("div");
      wrap.className = "sheet";
      let html = "<h4>" + B.esc(s.title) + " <small>" + s.total + " rows</small></h4><table>";
      s.rows.forEach((r) => { html += "<tr>" + r.map((c) => "<td>" + B.esc(c) + "</td>").join("") + "</tr>"; });
      wrap.innerHTML = html + "</table>";
      root.appendChild(wrap);
    });
  }

  // -- faults, circuits, activity ---------------------------------------------------------------
  const KINDS = [["503", "503"], ["429", "429"], ["slow", "slow"], ["401", "bad credentials"], ["off", "off"], ["clear", "clear"]];

  function onFaults(data) {
    const table = $("faults");
    table.innerHTML = "";
    Object.entries(data).forEach(([platform, switches]) => {
      const on = switches.map((s) => s.kind);
      const tr = document.createElement("tr");
      tr.innerHTML = "<th>" + platform + "</th>";
      const td = document.createElement("td");
      KINDS.forEach(([kind, label]) => {
        const b = document.createElement("button");
        b.className = "fault" + (on.includes(kind) ? " active" : "") + (kind === "clear" ? " plain" : "");
        b.textContent = label;
        b.dataset.platform = platform; b.dataset.kind = kind;
        b.addEventListener("click", () => post("/api/faults", { platform, kind }).catch((e) => alert(e.message)));
        td.appendChild(b);
      });
      tr.appendChild(td);
      table.appendChild(tr);
    });
  }

  function onCircuits(data) {
    $("circuits").innerHTML = data.map((c) => '<span class="chip ' + c.state + '">' + B.esc(c.platform) + ": " +
      B.esc(c.state) + (c.consecutive_failures ? " (" + c.consecutive_failures + " failures)" : "") + "</span>").join("") ||
      '<span class="empty">none</span>';
  }

  function onAction(view) {
    const li = document.createElement("li");
    li.className = "status-" + (view.status || "");
    li.innerHTML = "<code>" + B.esc(view.id) + "</code> " + B.esc(view.type || "") + " → <b>" + B.esc(view.status || view.event || "") + "</b>" +
      (view.served_by && view.served_by !== view.platform ? " (served by " + B.esc(view.served_by) + ")" : "") +
      (view.error ? ' <span class="err">' + B.esc(view.error) + "</span>" : "");
    const list = $("activity");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 30) list.removeChild(list.lastChild);
  }

  const PANELS = { slack: onSlack, notion: onNotion, trello: onTrello, drive: onDrive, sheets: onSheets, faults: onFaults, circuits: onCircuits };

  // -- forms ---------------------------------------------------------------------------------
  async function loadExamples() {
    const examples = await (await fetch("/api/examples")).json();
    const select = $("example");
    examples.forEach((ex, i) => {
      const o = document.createElement("option");
      o.value = i; o.textContent = ex.name;
      select.appendChild(o);
    });
    const show = () => { const ex = examples[select.value]; if (ex) $("action-json").value = JSON.stringify(ex.action, null, 2); };
    const risky = examples.findIndex((ex) => ex.name === "create-task-approval");
    if (risky >= 0) select.value = risky;
    select.addEventListener("change", show);
    show();
  }

  async function submitAction() {
    let action;
    try { action = JSON.parse($("action-json").value); } catch (e) { say("action-result", "Not JSON: " + e.message, false); return; }
    try {
      const data = await post("/api/actions", action);
      say("action-result", data.actions.map((a) => a.id + ": " + a.status + (a.duplicate ? " (duplicate)" : "")).join(", "), true);
    } catch (e) { say("action-result", e.message, false); }
  }

  async function loadWorkflows() {
    const workflows = await (await fetch("/api/workflows")).json();
    const select = $("workflow");
    const inputs = $("workflow-inputs");
    workflows.forEach((wf, i) => {
      const o = document.createElement("option");
      o.value = i; o.textContent = wf.name + (wf.description ? " - " + wf.description : "");
      select.appendChild(o);
    });
    const show = () => {
      const wf = workflows[select.value];
      inputs.innerHTML = "";
      if (!wf) { inputs.innerHTML = '<p class="empty">No workflows loaded.</p>'; return; }
      wf.inputs.forEach((name) => {
        const label = document.createElement("label");
        label.className = "field";
        label.innerHTML = "<span>" + B.esc(name) + "</span>";
        const input = document.createElement("input");
        input.name = name; input.value = wf.sample[name] || "";
        label.appendChild(input);
        inputs.appendChild(label);
      });
    };
    select.addEventListener("change", show);
    show();
    $("start-workflow").addEventListener("click", async () => {
      const wf = workflows[select.value];
      if (!wf) return;
      const input = {};
      inputs.querySelectorAll("input").forEach((i) => { input[i.name] = i.value; });
      try {
        const run = await post("/api/workflows/" + encodeURIComponent(wf.name), { input });
        say("workflow-result", run.id + ": " + run.status + (run.duplicate ? " (already ran: idempotency key)" : ""), true);
      } catch (e) { say("workflow-result", e.message, false); }
    });
  }

  async function sendCommand(ev) {
    ev.preventDefault();
    const text = $("command").value.trim();
    if (!text) return;
    try {
      await post("/api/command", { text, channel: state.current });
      $("command").value = "";
    } catch (e) { alert("The command did not reach opsbot: " + e.message); }
  }

  // -- live updates --------------------------------------------------------------------------
  function connect() {
    const source = new EventSource("/events");
    source.addEventListener("open", () => { $("conn").textContent = "live"; $("conn").className = "conn on"; });
    source.addEventListener("error", () => { $("conn").textContent = "reconnecting…"; $("conn").className = "conn off"; });
    source.addEventListener("state", (ev) => {
      const data = JSON.parse(ev.data);
      state.user = data.user;
      $("activity").innerHTML = "";
      (data.activity || []).forEach(onAction);
      Object.entries(PANELS).forEach(([name, fn]) => fn(data[name]));
    });
    Object.entries(PANELS).forEach(([name, fn]) => source.addEventListener(name, (ev) => fn(JSON.parse(ev.data))));
    source.addEventListener("modal", (ev) => onModal(JSON.parse(ev.data)));
    source.addEventListener("response", (ev) => onResponse(JSON.parse(ev.data)));
    source.addEventListener("action", (ev) => onAction(JSON.parse(ev.data)));
  }

  $("command-form").addEventListener("submit", sendCommand);
  $("submit-action").addEventListener("click", submitAction);
  $("modal-close").addEventListener("click", () => $("modal").classList.add("hidden"));
  loadExamples();
  loadWorkflows();
  connect();
})();
