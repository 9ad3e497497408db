/* Clicktrail admin: tabs, copy buttons, token reveal, parameter presets, tracking link
   builder and the Test postback tab. No dependencies; loaded on every admin page. */
(function () {
  "use strict";

  /* ---- Tabs: switch without a reload; remember the open tab (URL fragment, session). -- */
  function initTabs(root) {
    var tabs = Array.prototype.slice.call(root.querySelectorAll("[data-tab]"));
    var panels = Array.prototype.slice.call(root.querySelectorAll("[data-panel]"));
    var field = document.querySelector("[data-tab-field]");
    var key = "clicktrail-tab:" + root.getAttribute("data-tabs-key");
    var names = tabs.map(function (t) { return t.getAttribute("data-tab"); });

    function activate(name, remember) {
      if (names.indexOf(name) < 0) name = names[0];
      tabs.forEach(function (tab) {
        var on = tab.getAttribute("data-tab") === name;
        tab.setAttribute("aria-selected", on ? "true" : "false");
        tab.tabIndex = on ? 0 : -1;
      });
      panels.forEach(function (panel) { panel.hidden = panel.getAttribute("data-panel") !== name; });
      if (field) field.value = name;
      if (remember) {
        try { sessionStorage.setItem(key, name); } catch (e) { /* private mode */ }
        if (history.replaceState) history.replaceState(null, "", "#" + name);
      }
    }

    tabs.forEach(function (tab, index) {
      tab.addEventListener("click", function () { activate(tab.getAttribute("data-tab"), true); });
      tab.addEventListener("keydown", function (event) {
        var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (!step) return;
        var next = tabs[(index + step + tabs.length) % tabs.length];
        next.focus();
        activate(next.getAttribute("data-tab"), true);
      });
    });

    // A panel with validation errors wins; then the URL fragment; then the last tab used.
    var withErrors = null;
    panels.forEach(function (panel) {
      if (panel.querySelector(".errorlist, .errors")) {
        var tab = root.querySelector('[data-tab="' + panel.getAttribute("data-panel") + '"]');
        var badge = tab && tab.querySelector(".ct-tab-errors");
        if (badge) badge.hidden = false;
        if (!withErrors) withErrors = panel.getAttribute("data-panel");
      }
    });
    var stored = null;
    try { stored = sessionStorage.getItem(key); } catch (e) { /* private mode */ }
    var fragment = location.hash.replace(/^#/, "");
    activate(withErrors || (names.indexOf(fragment) >= 0 ? fragment : stored) || names[0], false);
    window.addEventListener("hashchange", function () {
      var name = location.hash.replace(/^#/, "");
      if (names.indexOf(name) >= 0) activate(name, true);
    });
  }

  /* ---- Copy buttons. ------------------------------------------------------------------ */
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text).catch(function () { return fallbackCopy(text); });
    }
    return fallbackCopy(text);
  }

  function copyFeedback(button, ok) {
    if (!button.hasAttribute("data-label")) button.setAttribute("data-label", button.textContent);
    button.textContent = ok ? "Copied ✓" : "Select and copy";
    button.classList.toggle("ct-copied", ok);
    clearTimeout(button._ctTimer);
    button._ctTimer = setTimeout(function () {
      button.textContent = button.getAttribute("data-label");
      button.classList.remove("ct-copied");
    }, 2500);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".ct-copy") : null;
    if (!button) return;
    event.preventDefault();
    var text = button.getAttribute("data-copy");
    if (text === null) {
      var source = document.querySelector(button.getAttribute("data-copy-from"));
      text = source ? source.textContent.trim() : "";
    }
    if (!text) return;
    copyText(text).then(
      function () { copyFeedback(button, true); },
      function () { copyFeedback(button, false); }
    );
  });

  /* ---- Token reveal (advertiser page). ------------------------------------------------ */
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-reveal]") : null;
    if (!button) return;
    var scope = button.closest("[data-token-scope]") || document;
    var reveal = button.getAttribute("aria-pressed") !== "true";
    scope.querySelectorAll("[data-token-value]").forEach(function (el) {
      var value = el.getAttribute(reveal ? "data-token" : "data-masked");
      if (value !== null) el.textContent = value;
    });
    button.setAttribute("aria-pressed", reveal ? "true" : "false");
    button.textContent = reveal ? "Hide" : "Reveal";
  });

  /* ---- Parameter mapping presets. ----------------------------------------------------- */
  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest(".ct-preset, [data-preset-clear]") : null;
    if (!button) return;
    var widget = button.closest("[data-mapping-widget]");
    var inputs = widget.querySelectorAll("input[data-parameter]");
    var note = widget.querySelector("[data-preset-note]");
    var changed = function () { widget.dispatchEvent(new CustomEvent("ct-mapping-changed")); };
    if (button.hasAttribute("data-preset-clear")) {
      inputs.forEach(function (input) { input.value = ""; });
      widget.querySelectorAll(".ct-preset").forEach(function (b) { b.classList.remove("ct-on"); });
      if (note) note.hidden = true;
      changed();
      return;
    }
    // A preset sets every parameter any preset manages: switching from AppsFlyer to Adjust
    // must not leave AppsFlyer's order-ID macro behind.
    var managed = {};
    widget.querySelectorAll(".ct-preset").forEach(function (b) {
      Object.keys(JSON.parse(b.getAttribute("data-mapping"))).forEach(function (name) { managed[name] = true; });
    });
    var mapping = JSON.parse(button.getAttribute("data-mapping"));
    inputs.forEach(function (input) {
      var name = input.getAttribute("data-parameter");
      if (Object.prototype.hasOwnProperty.call(mapping, name)) input.value = mapping[name];
      else if (managed[name]) input.value = "";
    });
    widget.querySelectorAll(".ct-preset").forEach(function (b) { b.classList.toggle("ct-on", b === button); });
    if (note) {
      note.textContent = button.getAttribute("data-note") || "";
      note.hidden = !note.textContent;
    }
    changed();
  });

  /* ---- An event's mapping: warn of resends counted again and of inconsistent URLs. ---- */
  function initEventMapping(widget) {
    var form = widget.closest("form");
    var multiple = form ? form.querySelector("#id_allow_multiple") : null;
    var inherited = JSON.parse(widget.getAttribute("data-inherited") || "{}");
    var offerTransaction = widget.getAttribute("data-offer-transaction");
    var doubleCount = widget.querySelector("[data-double-count-warning]");
    var mismatch = widget.querySelector("[data-mismatch-warning]");
    function value(name) {
      var input = widget.querySelector('input[data-parameter="' + name + '"]');
      return input ? input.value.trim() : "";
    }
    function check() {
      doubleCount.hidden = !(multiple && multiple.checked && !value("adv_sub") && !inherited.adv_sub);
      var transaction = value("transaction_id") || offerTransaction;
      mismatch.hidden = transaction === offerTransaction;
      mismatch.querySelector("[data-mismatch-placeholder]").textContent = "transaction_id=" + transaction;
    }
    widget.addEventListener("input", check);
    widget.addEventListener("ct-mapping-changed", check);
    if (multiple) multiple.addEventListener("change", check);
    check();
  }

  /* ---- Tracking link builder (base URL from offers.postback_urls.tracking_url). ------- */
  function initTracking(root) {
    var base = root.getAttribute("data-base-url");
    var publisher = root.querySelector("[data-tracking-publisher]");
    var output = root.querySelector("[data-tracking-url]");
    var subs = root.querySelectorAll("[data-sub]");
    var copy = root.querySelector("[data-tracking-copy]");
    var hint = root.querySelector("[data-tracking-hint]");
    function build() {
      // No publisher chosen: nothing to copy (a link with aff_id=REPLACE records no click).
      var chosen = publisher.value !== "";
      var url = base.replace("aff_id=REPLACE", "aff_id=" + (chosen ? encodeURIComponent(publisher.value) : "REPLACE"));
      subs.forEach(function (input) {
        if (input.value) url += "&" + input.getAttribute("data-sub") + "=" + encodeURIComponent(input.value);
      });
      output.textContent = url;
      output.classList.toggle("ct-incomplete", !chosen);
      if (copy) copy.disabled = !chosen;
      if (hint) hint.hidden = chosen;
    }
    publisher.addEventListener("change", build);
    subs.forEach(function (input) { input.addEventListener("input", build); });
    build();
  }

  /* ---- Test postback tab. ------------------------------------------------------------- */
  function csrfToken() {
    var input = document.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }

  function postJSON(url, payload) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify(payload)
    }).then(function (response) {
      return response.json().then(
        function (data) { return { status: response.status, data: data }; },
        function () { return { status: response.status, data: { error: "The server answered " + response.status + "." } }; }
      );
    });
  }

  function link(href, text) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    return a;
  }

  function initTestPostback(root) {
    var transaction = root.querySelector("[data-test-transaction]");
    var clickInfo = root.querySelector("[data-test-click-info]");
    var result = root.querySelector("[data-test-result]");
    var urlBox = root.querySelector("[data-test-url]");
    var urlRow = root.querySelector("[data-test-url-row]");
    var verdict = root.querySelector("[data-test-verdict]");
    var body = root.querySelector("[data-test-body]");
    var links = root.querySelector("[data-test-links]");

    // Enter in these inputs must not submit the offer form around them.
    root.querySelectorAll("input").forEach(function (input) {
      input.addEventListener("keydown", function (event) {
        if (event.key === "Enter") { event.preventDefault(); send(true); }
      });
    });

    root.querySelector("[data-test-make-click]").addEventListener("click", function () {
      clickInfo.textContent = "Making a test click…";
      postJSON(root.getAttribute("data-click-url"), {
        publisher_id: root.querySelector("[data-test-publisher]").value
      }).then(function (answer) {
        if (answer.status !== 201) {
          clickInfo.textContent = answer.data.error || "The test click was refused.";
          clickInfo.className = "help ct-bad";
          return;
        }
        transaction.value = answer.data.transaction_id;
        clickInfo.className = "help ct-good";
        clickInfo.textContent = "Test click made for " + answer.data.publisher.name + ": transaction_id " + answer.data.transaction_id + ". ";
        if (answer.data.admin_url) clickInfo.appendChild(link(answer.data.admin_url, "See the click"));
      });
    });

    function send(dryRun) {
      var payload = {
        target: root.querySelector("[data-test-target]").value,
        transaction_id: transaction.value.trim(),
        dry_run: dryRun
      };
      root.querySelectorAll("[data-test-value]").forEach(function (input) {
        payload[input.getAttribute("data-test-value")] = input.value.trim();
      });
      verdict.className = "ct-verdict";
      verdict.textContent = dryRun ? "Checking…" : "Firing…";
      urlRow.hidden = true;
      result.hidden = false;
      postJSON(root.getAttribute("data-send-url"), payload).then(function (answer) {
        links.textContent = "";
        if (answer.status !== 200) {
          urlBox.textContent = "";
          urlRow.hidden = true;
          body.textContent = "";
          verdict.className = "ct-verdict ct-bad";
          verdict.textContent = answer.data.error || "Refused.";
          return;
        }
        var data = answer.data;
        urlBox.textContent = data.url;
        urlRow.hidden = false;
        body.textContent = JSON.stringify(data.body, null, 2);
        var accepted = data.reason === "accepted";
        verdict.className = "ct-verdict " + (accepted ? "ct-good" : "ct-bad");
        verdict.setAttribute("data-reason", data.reason);
        var head = data.dry_run
          ? (accepted ? "Dry run: would be accepted" : "Dry run: would be rejected")
          : (accepted ? "Fired: accepted and recorded" : "Fired: rejected");
        verdict.textContent = head + " — HTTP " + data.status_code + " " + data.reason +
          (data.body && data.body.message ? ". " + data.body.message : "") +
          (accepted && data.body ? ". Revenue " + data.body.revenue + " " + data.body.currency + ", payout " + data.body.payout + " " + data.body.currency + "." : "");
        if (data.record_url) links.appendChild(link(data.record_url, "See the record"));
        if (data.record_url && data.log_url) links.appendChild(document.createTextNode(" · "));
        if (data.log_url) links.appendChild(link(data.log_url, "See the postback log row"));
      }, function () {
        verdict.className = "ct-verdict ct-bad";
        verdict.textContent = "The server could not be reached.";
      });
    }

    root.querySelectorAll("[data-test-send]").forEach(function (button) {
      button.addEventListener("click", function () { send(button.getAttribute("data-test-send") === "dry"); });
    });
  }

  function init() {
    document.querySelectorAll("[data-tabs]").forEach(initTabs);
    document.querySelectorAll("[data-event-mapping]").forEach(initEventMapping);
    document.querySelectorAll("[data-tracking-builder]").forEach(initTracking);
    document.querySelectorAll("[data-test-postback]").forEach(initTestPostback);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
