// A copy button on every student box ("For students"): staff paste the reply
// into Piazza as plain text, with each link written out as its full address.
// The hub chooser (see wireChooser).
(function () {
  "use strict";

  function clean(text) {
    return text.replace(/\s+/g, " ").trim();
  }

  // Whether an element is for the chosen hub (other hubs' variants are hidden).
  function forChosenHub(el) {
    const hub = document.documentElement.getAttribute("data-hub");
    return !el.classList.contains("hp-hub") || !hub || el.dataset.hub.split(" ").indexOf(hub) >= 0;
  }

  function inline(node) {
    const copy = node.cloneNode(true);
    copy.querySelectorAll(".hp-hub").forEach(function (el) {
      if (!forChosenHub(el)) {
        el.remove();
      }
    });
    copy.querySelectorAll("a[href]").forEach(function (a) {
      const label = clean(a.textContent);
      a.textContent = label.includes(a.href) ? label : label + " (" + a.href + ")";
    });
    return clean(copy.textContent);
  }

  // The box's text: paragraphs apart, list items one a line.
  function replyText(box) {
    const parts = [];
    Array.from(box.children).forEach(function (child) {
      if (child.classList.contains("admonition-title") || child.classList.contains("hp-copy")) {
        return;
      }
      if (child.matches("div.hp-hub")) {  // a block for some hubs: its text if it is shown
        if (forChosenHub(child)) {
          parts.push(replyText(child));
        }
        return;
      }
      if (child.tagName === "UL" || child.tagName === "OL") {
        const items = Array.from(child.children).map(function (li, i) {
          return (child.tagName === "OL" ? i + 1 + ". " : "- ") + inline(li);
        });
        parts.push(items.join("\n"));
      } else {
        parts.push(inline(child));
      }
    });
    return parts.filter(Boolean).join("\n\n");
  }

  function write(text) {
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(text);
    }
    const area = document.createElement("textarea");  // file:// and plain http
    area.value = text;
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error("copy refused"));
  }

  function addButtons() {
    document.querySelectorAll(".admonition.hp-student").forEach(function (box) {
      const title = box.querySelector(":scope > .admonition-title");
      if (!title || title.querySelector(".hp-copy")) {
        return;
      }
      const button = document.createElement("button");
      button.type = "button";
      button.className = "hp-copy";
      button.textContent = "Copy";
      button.setAttribute("aria-label", "Copy this answer for a student");
      button.addEventListener("click", function () {
        write(replyText(box)).then(
          function () { button.textContent = "Copied"; },
          function () { button.textContent = "Select and copy by hand"; }
        );
        setTimeout(function () { button.textContent = "Copy"; }, 2000);
      });
      title.appendChild(button);  // in the title bar, top right
    });
  }

  // The hub chooser: the choice is an attribute on <html> (set in <head>,
  // before the page is drawn, by the hook's inline script) and is kept in
  // localStorage for the next page. CSS shows only that hub's variants.
  function wireChooser() {
    const select = document.getElementById("hp-hub");
    if (!select || select.dataset.wired) {
      return;
    }
    select.dataset.wired = "1";
    select.value = document.documentElement.getAttribute("data-hub") || select.value;
    select.addEventListener("change", function () {
      document.documentElement.setAttribute("data-hub", select.value);
      try {
        localStorage.setItem(select.dataset.storageKey, select.value);
      } catch (e) {
        // Storage refused (private mode): the choice holds for this page only.
      }
    });
  }

  function onLoad() {
    addButtons();
    wireChooser();
  }

  if (typeof document$ !== "undefined") {
    document$.subscribe(onLoad);  // Material's page-load stream
  } else {
    document.addEventListener("DOMContentLoaded", onLoad);
  }
})();
