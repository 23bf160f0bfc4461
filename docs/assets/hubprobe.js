// A copy button on every student box ("For students"): staff paste the reply
// into Piazza as plain text, with each link written out as its full address.
(function () {
  "use strict";

  function clean(text) {
    return text.replace(/\s+/g, " ").trim();
  }

  function inline(node) {
    const copy = node.cloneNode(true);
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

  if (typeof document$ !== "undefined") {
    document$.subscribe(addButtons);  // Material's page-load stream
  } else {
    document.addEventListener("DOMContentLoaded", addButtons);
  }
})();
