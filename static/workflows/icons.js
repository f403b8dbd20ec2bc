/* Icons of the workflow editor's actions: an action names one in its `icon` attribute.
   Each is the inside of a 24x24 SVG drawn with strokes (drawn for this project). */
(function () {
  "use strict";
  window.CDPWorkflowIcons = {
    "play": '<path d="M8 5v14l11-7z"/>',
    "stop": '<rect x="6" y="6" width="12" height="12" rx="2"/>',
    "branch": '<circle cx="6" cy="6" r="2"/><circle cx="6" cy="18" r="2"/><circle cx="18" cy="8" r="2"/><path d="M6 8v8M6 12c0-3 6-2 10-4"/>',
    "clock": '<circle cx="12" cy="12" r="8"/><path d="M12 8v4l3 2"/>',
    "user-edit": '<circle cx="10" cy="8" r="3.5"/><path d="M3.5 19c.8-3.5 3.4-5 6.5-5 1.3 0 2.5.3 3.5.8M15 19l1-3 4-4 2 2-4 4z"/>',
    "copy": '<rect x="8" y="8" width="11" height="11" rx="2"/><path d="M16 8V6a2 2 0 0 0-2-2H6a2 2 0 0 0-2 2v8a2 2 0 0 0 2 2h2"/>',
    "plus": '<path d="M12 5v14M5 12h14"/>',
    "list": '<path d="M9 6h11M9 12h11M9 18h11"/><circle cx="4.5" cy="6" r="1"/><circle cx="4.5" cy="12" r="1"/><circle cx="4.5" cy="18" r="1"/>',
    "trash": '<path d="M4 7h16M9 7V4h6v3M6 7l1 13h10l1-13"/>',
    "merge": '<circle cx="6" cy="5" r="2"/><circle cx="18" cy="5" r="2"/><circle cx="12" cy="19" r="2"/><path d="M6 7c0 5 6 5 6 10M18 7c0 5-6 5-6 10"/>',
    "users-plus": '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 19c.8-3.5 3.4-5 6.5-5s5.7 1.5 6.5 5M19 8v6M16 11h6"/>',
    "users-minus": '<circle cx="9" cy="8" r="3.5"/><path d="M2.5 19c.8-3.5 3.4-5 6.5-5s5.7 1.5 6.5 5M16 11h6"/>',
    "bolt": '<path d="M13 3 5 14h6l-1 7 8-11h-6z"/>',
    "hash": '<path d="M9 4 7 20M17 4l-2 16M4 9h16M3 15h16"/>',
    "globe": '<circle cx="12" cy="12" r="8.5"/><path d="M3.5 12h17M12 3.5c2.5 2.5 3.5 5.5 3.5 8.5s-1 6-3.5 8.5c-2.5-2.5-3.5-5.5-3.5-8.5s1-6 3.5-8.5"/>',
    "braces": '<path d="M9 4c-2 0-3 1-3 3v2c0 1.5-1 2.5-2 3 1 .5 2 1.5 2 3v2c0 2 1 3 3 3M15 4c2 0 3 1 3 3v2c0 1.5 1 2.5 2 3-1 .5-2 1.5-2 3v2c0 2-1 3-3 3"/>',
    "note": '<path d="M6 3h9l4 4v14H6z"/><path d="M14 3v5h5M9 12h7M9 16h7"/>',
    "box": '<rect x="4" y="4" width="16" height="16" rx="3"/>'
  };
})();
