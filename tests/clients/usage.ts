// A typed use of the types openapi-typescript generates from /openapi.json: tsc --strict must
// accept it, so a frontend's fetch code keeps compiling against the document.
import createClient from "openapi-fetch";
import type { components, operations, paths } from "./schema";

type V1Customer = components["schemas"]["V1Customer"];
type V1Patch = components["schemas"]["V1CustomerPatch"];
type V1Write = components["schemas"]["V1CustomerWrite"];
type Member = components["schemas"]["LoyaltyMemberWrite"];
type Bulk = components["schemas"]["LoyaltyMemberBulk"];
type ListQuery = NonNullable<operations["v1_list_customers"]["parameters"]["query"]>;
type GetOk = paths["/api/v1/customers/{customer_id}"]["get"]["responses"][200];

const write: V1Write = { firstName: "Fraser", lastName: "Brendand", dob: "1985-04-12" };
const patch: V1Patch = { middleName: "Alexander", address: { postCode: "2145" } };
const bulk: Bulk = [
  { loyalty_id: "3", client_name: "Mariya", client_birthday: "1982-11-17", is_male: false },
];
const one: Member = bulk[0];
const query: ListQuery = { lastName: "Brendand", sortBy: "lastName:desc", pageNo: 0, pageSize: 10 };
const etagHeader: GetOk["headers"]["ETag"] = 'W/"3"';

function fullName(customer: V1Customer): string {
  return `${customer.firstName} ${customer.lastName}`;
}

async function getCustomer(base: string, id: string, token: string): Promise<V1Customer> {
  const response = await fetch(`${base}/api/v1/customers/${id}`, {
    headers: { Authorization: `Bearer ${token}`, "If-None-Match": etagHeader },
  });
  return (await response.json()) as V1Customer;
}

type FormField = components["schemas"]["FormField"];
type FormIn = components["schemas"]["CustomerFormIn"];
const submission: FormIn = { first_name: "Cyn", dob: "1985-09-06" };

// Exhaustive over the form's field types: a plain `string` type would not compile here.
function inputFor(field: FormField): string {
  switch (field.type) {
    case "string":
    case "country":
      return "text";
    case "email":
      return "email";
    case "phone":
      return "tel";
    case "date":
      return "date";
    case "choice":
      return "select";
  }
}

const api = createClient<paths, "application/json">({ baseUrl: "http://127.0.0.1:8000" });

async function signIn(clientId: string, clientSecret: string): Promise<string | undefined> {
  const { data } = await api.POST("/api/auth/token", {
    body: { grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret },
    bodySerializer: (body) => new URLSearchParams(body as Record<string, string>),
  });
  return data?.access_token;
}

// A v1 form places each message beside its field; address parts come as `address.city`.
async function createOrFieldErrors(
  token: string,
  body: V1Write,
): Promise<V1Customer | Record<string, string[]>> {
  const { data, error } = await api.POST("/api/v1/customers", {
    body,
    headers: { Authorization: `Bearer ${token}` },
  });
  if (data) return data.data;
  return error && "data" in error ? (error.data.fields ?? {}) : {};
}

// The register's birthday is a date with no time zone: shown as written, never converted.
async function birthdays(token: string): Promise<(string | undefined)[]> {
  const { data } = await api.GET("/api/v1/loyalty/", {
    params: { query: { page_size: 10, ordering: "-client_birthday" } },
    headers: { Authorization: `Bearer ${token}` },
  });
  return (data?.results ?? []).map((m) => m.client_birthday?.slice(0, 10));
}

export {
  birthdays,
  createOrFieldErrors,
  fullName,
  getCustomer,
  inputFor,
  one,
  patch,
  query,
  signIn,
  submission,
  write,
};
