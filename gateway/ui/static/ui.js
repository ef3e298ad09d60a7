// The review page's keyboard shortcuts and image zoom. No framework, no build step.
"use strict";

(function () {
  const form = document.getElementById("review-form");
  if (form) {
    const fieldset = form.querySelector("fieldset");
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey || fieldset.disabled) return;
      const target = event.target;
      const tag = target.tagName;
      if (tag === "TEXTAREA" || tag === "SELECT" ||
          (tag === "INPUT" && target.type !== "checkbox")) return;
      if (event.key === "Enter") {
        if (tag === "BUTTON" || tag === "A") return; // their own Enter
        event.preventDefault();
        form.requestSubmit();
        return;
      }
      const box = form.querySelector('input[data-key="' + CSS.escape(event.key.toLowerCase()) + '"]');
      if (box) {
        event.preventDefault();
        box.checked = !box.checked;
      }
    });
  }

  const image = document.getElementById("zoomable");
  const frame = document.getElementById("frame");
  if (image && frame) {
    const level = document.getElementById("zoom-level");
    let scale = 1;
    function zoom(factor) {
      scale = factor === 0 ? 1 : Math.min(16, Math.max(1, scale * factor));
      image.style.transform = "scale(" + scale + ")";
      frame.classList.toggle("zoomed", scale > 1);
      level.textContent = Math.round(scale * 100) + " %";
    }
    document.querySelectorAll("[data-zoom]").forEach(function (button) {
      button.addEventListener("click", function () {
        zoom({ in: 1.5, out: 1 / 1.5, reset: 0 }[button.dataset.zoom]);
      });
    });
    frame.addEventListener("wheel", function (event) {
      event.preventDefault();
      zoom(event.deltaY < 0 ? 1.25 : 0.8);
    }, { passive: false });
    image.addEventListener("click", function (event) {
      zoom(event.shiftKey ? 1 / 1.5 : 1.5);
    });
  }
})();
