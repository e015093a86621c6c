/** The page's element with this id. */
export const byId = (id) => document.getElementById(id);
