// Block Kit -> DOM for the sandbox page: header, section (text, fields, accessory), divider,
// context, actions (buttons), image, input (in modals). mrkdwn: *bold*, _italic_, ~strike~,
// `code`, ```pre```, <url|text>, <@U123>, :emoji:. Everything is escaped before formatting.
"use strict";

(function () {
  const EMOJI = {
    white_check_mark: "✅", tada: "🎉", x: "❌", no_entry: "⛔", hourglass: "⌛",
    heavy_multiplication_x: "✖️", warning: "⚠️", rotating_light: "🚨", red_circle: "🔴",
    large_green_circle: "🟢", green_circle: "🟢", large_yellow_circle: "🟡", information_source: "ℹ️",
    fire: "🔥", lock: "🔒", bell: "🔔", hammer_and_wrench: "🛠️", clipboard: "📋", inbox_tray: "📥",
    arrows_counterclockwise: "🔄", pause_button: "⏸️", arrow_forward: "▶️", skull: "💀",
    heavy_check_mark: "✔️", question: "❓", eyes: "👀", zap: "⚡", chart_with_upwards_trend: "📈",
  };

  function esc(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function inline(text, users) {
    let out = text;
    out = out.replace(/`([^`\n]+)`/g, (_, c) => "<code>" + c + "</code>");
    out = out.replace(/&lt;@([A-Z0-9]+)&gt;/g, (_, u) => '<span class="mention">@' + esc(users[u] || u) + "</span>");
    out = out.replace(/&lt;#([A-Z0-9]+)(?:\|([^&]*))?&gt;/g, (_, c, n) => '<span class="mention">#' + (n || c) + "</span>");
    out = out.replace(/&lt;(https?:\/\/[^|&]+)\|([^&]+)&gt;/g, (_, u, t) => '<a href="' + u + '" target="_blank">' + t + "</a>");
    out = out.replace(/&lt;(https?:\/\/[^&]+)&gt;/g, (_, u) => '<a href="' + u + '" target="_blank">' + u + "</a>");
    out = out.replace(/(^|[\s(])\*([^*\n]+)\*/g, "$1<b>$2</b>");
    out = out.replace(/(^|[\s(])_([^_\n]+)_/g, "$1<i>$2</i>");
    out = out.replace(/(^|[\s(])~([^~\n]+)~/g, "$1<s>$2</s>");
    out = out.replace(/:([a-z0-9_+-]+):/g, (m, n) => EMOJI[n] || m);
    return out.replace(/\n/g, "<br>");
  }

  function mrkdwn(text, users) {
    const parts = esc(text || "").split("```");
    return parts.map((part, i) => (i % 2 ? "<pre>" + part.replace(/^\n/, "") + "</pre>" : inline(part, users))).join("");
  }

  function textHtml(obj, users) {
    if (!obj) return "";
    if (typeof obj === "string") return mrkdwn(obj, users);
    return obj.type === "plain_text" ? esc(obj.text).replace(/:([a-z0-9_+-]+):/g, (m, n) => EMOJI[n] || m) : mrkdwn(obj.text, users);
  }

  function el(tag, cls, html) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (html !== undefined) node.innerHTML = html;
    return node;
  }

  function button(element, ctx) {
    const b = el("button", "bk-button " + (element.style || ""), textHtml(element.text, ctx.users));
    b.dataset.actionId = element.action_id || "";
    b.dataset.value = element.value || "";
    if (element.url) {
      b.addEventListener("click", () => window.open(element.url, "_blank"));
    } else if (ctx.onButton) {
      b.addEventListener("click", () => ctx.onButton(element, b));
    } else {
      b.disabled = true;
    }
    return b;
  }

  function element(item, ctx) {
    if (item.type === "button") return button(item, ctx);
    if (item.type === "image") {
      const img = el("img", "bk-img");
      img.src = item.image_url; img.alt = item.alt_text || "";
      return img;
    }
    if (item.type === "plain_text_input") {
      const input = el(item.multiline ? "textarea" : "input", "bk-input");
      input.dataset.actionId = item.action_id || "";
      if (item.initial_value) input.value = item.initial_value;
      return input;
    }
    return el("span", "bk-text", textHtml(item, ctx.users));
  }

  function block(b, ctx) {
    switch (b.type) {
      case "header":
        return el("div", "bk-header", textHtml(b.text, ctx.users));
      case "divider":
        return el("hr", "bk-divider");
      case "context": {
        const node = el("div", "bk-context");
        (b.elements || []).forEach((e) => node.appendChild(element(e, ctx)));
        return node;
      }
      case "actions": {
        const node = el("div", "bk-actions");
        (b.elements || []).forEach((e) => node.appendChild(element(e, ctx)));
        return node;
      }
      case "image": {
        const img = el("img", "bk-img");
        img.src = b.image_url; img.alt = b.alt_text || "";
        return img;
      }
      case "input": {
        const node = el("label", "bk-input-block");
        node.dataset.blockId = b.block_id || "";
        node.appendChild(el("span", "bk-label", textHtml(b.label, ctx.users)));
        node.appendChild(element(b.element || {}, ctx));
        return node;
      }
      default: { // section, and anything unknown with text
        const node = el("div", "bk-section");
        const body = el("div", "bk-body");
        if (b.text) body.appendChild(el("div", "bk-text", textHtml(b.text, ctx.users)));
        if (b.fields) {
          const fields = el("div", "bk-fields");
          b.fields.forEach((f) => fields.appendChild(el("div", "bk-field", textHtml(f, ctx.users))));
          body.appendChild(fields);
        }
        node.appendChild(body);
        if (b.accessory) node.appendChild(element(b.accessory, ctx));
        return node;
      }
    }
  }

  // Render a message (or a view's blocks) into a fragment. ctx: {users, onButton(element, node)}.
  function render(blocks, fallbackText, ctx) {
    const frag = document.createDocumentFragment();
    if (!blocks || !blocks.length) {
      frag.appendChild(el("div", "bk-text", mrkdwn(fallbackText || "", ctx.users)));
      return frag;
    }
    blocks.forEach((b) => frag.appendChild(block(b, ctx)));
    return frag;
  }

  // The values of a modal's inputs as view_submission wants them: {block_id: {action_id: text}}.
  function values(root) {
    const out = {};
    root.querySelectorAll(".bk-input-block").forEach((blockNode) => {
      const input = blockNode.querySelector(".bk-input");
      if (!input) return;
      out[blockNode.dataset.blockId] = { [input.dataset.actionId]: input.value };
    });
    return out;
  }

  window.Blocks = { render, values, mrkdwn, esc, textHtml };
})();
