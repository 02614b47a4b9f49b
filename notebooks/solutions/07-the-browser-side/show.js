// Solution: the users list, and your own messages apart.
function showMessage(data) {
  const item = document.createElement("li");
  const user = document.createElement("bdi");
  user.textContent = data.user;
  item.append(user, ": " + data.message);
  if (data.id === socket.id) item.classList.add("mine"); // sent by this connection
  $("messages").append(item);
}

function showUsers(names) {
  const items = names.map((name) => {
    const item = document.createElement("li");
    item.textContent = name;
    return item;
  });
  $("users").replaceChildren(...items);
}
